// Several independent conversations sharing one model: prompts of different lengths are prefilled per slot,
// then every slot advances one token per batched step (one matrix product per weight for all slots).
//   batch MODEL
#include <iostream>
#include <string>
#include <vector>

#include <rwkv/rwkv.hpp>

int main(int argc, char** argv) try {
  if (argc != 2) {
    std::cerr << "usage: batch MODEL   (a byte-level RWKV-7 model, e.g. tests/data/tiny-7v0.model.safetensors)\n";
    return 2;
  }
  const auto model = rwkv::load_model<rwkv::v7::Model<rwkv::f32>>(argv[1]);
  const rwkv::byte_tokenizer tok;
  const std::vector<std::string> prompts{"The ", "Once upon a time, ", "In the beginning "};
  rwkv::Batch<rwkv::v7::Model<rwkv::f32>> batch(model, prompts.size());
  rwkv::thread_pool pool(2);

  std::vector<std::string> text(prompts);
  std::vector<std::vector<float>> logits;
  for (std::size_t i = 0; i < prompts.size(); ++i) logits.push_back(batch.prefill(i, tok.encode(prompts[i]), &pool));
  for (int step = 0; step < 48; ++step) {
    std::vector<rwkv::slot_token> next;
    for (std::size_t i = 0; i < prompts.size(); ++i) next.push_back({i, rwkv::argmax(logits[i])});
    const auto out = batch.step(next, &pool);
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      text[i] += static_cast<char>(next[i].token);
      logits[i].assign(out.row(static_cast<Eigen::Index>(i)).data(),
                       out.row(static_cast<Eigen::Index>(i)).data() + out.cols());
    }
  }
  for (std::size_t i = 0; i < text.size(); ++i) std::cout << "[slot " << i << "] " << text[i] << "\n";
} catch (const std::exception& e) {
  std::cerr << "batch: " << e.what() << "\n";
  return 1;
}
