// Must NOT compile: the CUDA backend tag, which has no implementation yet. CTest checks the diagnostic sentence.
#include <rwkv/v7.hpp>

int main() {
  rwkv::v7::Model<rwkv::f32, rwkv::cuda<>> model;
  (void)model;
}
