// rwkv.cpp .bin reader, including dequantization and the inverse transforms to official tensors.
#include <rwkv/io/rwkvcpp.hpp>

#include "fuzz_common.hpp"

RWKV_FUZZ_TARGET({
  const auto f = rwkv::io::rwkvcpp_file::from_bytes(bytes, "fuzz.bin");
  for (const auto& t : f.tensors())
    if (t.nbytes > 0) (void)static_cast<volatile std::byte>(t.data[t.nbytes - 1]);
})
