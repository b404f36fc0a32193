// PyTorch .pth reader: zip container and the pickle subset.
#include <rwkv/io/pth.hpp>

#include "fuzz_common.hpp"

RWKV_FUZZ_TARGET({
  const auto f = rwkv::io::pth_file::from_bytes(bytes, "fuzz.pth");
  for (const auto& t : f.tensors())
    if (t.nbytes > 0) (void)static_cast<volatile std::byte>(t.data[t.nbytes - 1]);  // views must be in bounds
})
