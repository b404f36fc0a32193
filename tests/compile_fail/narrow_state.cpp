// Must NOT compile: a 16-bit recurrent state without an explicit opt-in.
#include <rwkv/core/precision.hpp>

int main() {
  using narrow = rwkv::precision<rwkv::bf16, float, rwkv::bf16, float>;
  return sizeof(narrow::state_type);
}
