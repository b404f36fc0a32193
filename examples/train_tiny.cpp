// Train a tiny RWKV-7 from scratch on a text file, then generate with it:
//   train_tiny [TEXT] [STEPS] [OUT.safetensors]
// (defaults: the English sample in tests/data, 300 steps, train_tiny.safetensors). Bytes are the tokens.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include <rwkv/init/builder.hpp>
#include <rwkv/rwkv.hpp>
#include <rwkv/train.hpp>

int main(int argc, char** argv) try {
  const std::string text_path = argc > 1 ? argv[1] : RWKV_EXAMPLE_TEXT;
  const std::int64_t steps = argc > 2 ? std::stoll(argv[2]) : 300;
  const std::filesystem::path out = argc > 3 ? argv[3] : "train_tiny.safetensors";

  // 1. A new 2-layer model (64 channels, two heads of 32, a byte vocabulary), initialised as the official code does.
  rwkv::init::builder init({.n_layer = 2, .n_embd = 64, .vocab = 256, .head_size = 32}, /*seed*/ 1);
  rwkv::init::model<rwkv::v7::Block<>>(init);
  init.save(out);
  auto net = rwkv::train::network<rwkv::train::v7::layer>::load(out);

  // 2. The text as byte tokens; the last 10% is held out to measure what the model learned.
  std::ifstream in(text_path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + text_path);
  std::stringstream ss;
  ss << in.rdbuf();
  const rwkv::byte_tokenizer tok;
  const auto tokens = tok.encode(ss.str());
  const auto split = tokens.begin() + static_cast<std::ptrdiff_t>(tokens.size() * 9 / 10);
  const std::vector<std::int32_t> training(tokens.begin(), split), held_out(split, tokens.end());

  // 3. Train: random 64-byte windows, AdamW with warmup and cosine decay, gradient clipping, L2Wrap.
  rwkv::train::trainer trainer(
      net, training,
      {.context = 64, .steps = steps, .warmup = 10, .lr = 3e-3f, .lr_final = 3e-4f, .adam = {.weight_decay = 0.01f}});
  std::cout << "held-out loss before training: " << trainer.evaluate(held_out) << " nats/byte\n";
  while (trainer.steps_done() < steps) {
    const auto r = trainer.step();
    if ((r.step + 1) % 50 == 0) std::cout << "step " << r.step + 1 << "  loss " << r.loss << "\n";
  }
  std::cout << "held-out loss after " << steps << " steps: " << trainer.evaluate(held_out) << " nats/byte\n";
  trainer.save(out);  // an ordinary checkpoint (+ train_tiny.trainer.safetensors to resume from)

  // 4. The trained file is a model like any other: generate with the inference engine.
  const auto model = rwkv::load_model<rwkv::v7::Model<rwkv::f32, rwkv::cpu<>, 32>>(out);
  auto state = model.make_state();
  std::cout << "sample: The ";
  rwkv::generate(model, state, tok, "The ", {.sampling = {.temperature = 0.7f}, .max_tokens = 80, .seed = 1},
                 [](std::string_view piece) { std::cout << piece << std::flush; });
  std::cout << "\n";
} catch (const std::exception& e) {
  std::cerr << "train_tiny: " << e.what() << "\n";
  return 1;
}
