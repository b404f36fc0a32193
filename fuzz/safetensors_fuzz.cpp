// safetensors reader, then the model loader's validation (shapes, dtypes, names) on whatever it accepted.
#include <rwkv/io/safetensors.hpp>
#include <rwkv/v7.hpp>

#include "fuzz_common.hpp"

RWKV_FUZZ_TARGET({
  const auto f = rwkv::io::safetensors_file::from_bytes(bytes, "fuzz.safetensors");
  rwkv::io::weight_reader r(f.path(), f.tensors(), f.owner());
  const auto m = rwkv::v7::Model<rwkv::f32>::from_reader(r);
  auto s = m.make_state();
  m.step(0, s);
})
