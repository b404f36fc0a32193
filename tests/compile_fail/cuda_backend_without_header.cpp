// Must NOT compile: the CUDA backend tag used without <rwkv/cuda.hpp>. CTest checks the diagnostic sentence.
#include <rwkv/v7.hpp>

int main() {
  rwkv::v7::Model<rwkv::f32, rwkv::cuda<>> model;
  (void)model;
}
