// State readers: the safetensors state file and the raw byte form, into the state of a fixed small model.
#include <rwkv/state_file.hpp>
#include <rwkv/v7.hpp>

#include "fuzz_common.hpp"

namespace {
const rwkv::v7::Model<rwkv::f32>& model() {
  static const auto m = rwkv::v7::Model<rwkv::f32>::load(RWKV_FUZZ_MODEL);
  return m;
}
}  // namespace

RWKV_FUZZ_TARGET({
  try {
    (void)rwkv::v7::State::from_bytes(bytes, model().make_state(), "fuzz.state");
  } catch (const rwkv::error&) {
  }
  const auto f = rwkv::io::safetensors_file::from_bytes(bytes, "fuzz.state.safetensors");
  auto s = rwkv::load_state(f, model().make_state());
  model().step(1, s);
})
