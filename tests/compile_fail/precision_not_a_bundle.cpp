// Must NOT compile: a plain number type where a precision bundle (rwkv::f32, rwkv::bf16_weights, ...) belongs.
// CTest checks the diagnostic sentence.
#include <rwkv/v7.hpp>

int main() {
  rwkv::v7::Model<double> model;
  (void)model;
}
