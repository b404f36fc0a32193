// LoRA adapters merged at load and state-tuned initial states (docs/adapters.md). The adapters are built here
// with known matrices of small dyadic values, so that B·A is exact in float32 and the merged weights can be
// written out independently (W + (alpha/r)·B·A, one rounding): a model loaded with the adapter must hold exactly
// those weights and give exactly the logits of a checkpoint saved with them, for every version and precision.
#define BOOST_TEST_MODULE adapter
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <rwkv/any_model.hpp>
#include <rwkv/io/adapter.hpp>
#include <rwkv/state_file.hpp>
#include <rwkv/v4.hpp>
#include <rwkv/v5.hpp>
#include <rwkv/v6.hpp>
#include <rwkv/v7.hpp>

#include "../support/golden.hpp"

namespace {

using namespace rwkv;
namespace fs = std::filesystem;

fs::path temp_file(const std::string& name) {
  return fs::temp_directory_path() / ("rwkv_adapter_test_" + std::to_string(::getpid()) + "_" + name);
}

// name -> (shape, float values) of a checkpoint.
struct tensors {
  std::map<std::string, std::pair<std::vector<std::int64_t>, std::vector<float>>> t;
  static tensors of(const std::string& path) {
    tensors out;
    const auto f = io::safetensors_file::open(path);
    for (const auto& v : f.tensors()) out.t[v.name] = {v.shape, test::floats(v)};
    return out;
  }
  void save(const fs::path& p) const {
    std::vector<io::tensor_to_write> w;
    for (const auto& [n, v] : t)
      w.push_back(io::tensor_to_write::from<float>(n, v.first, std::span<const float>(v.second)));
    io::save_safetensors(p, w);
  }
};

// A LoRA factor of small dyadic values (exact products and sums in float32).
std::vector<float> factor(std::int64_t rows, std::int64_t cols, int seed, float unit) {
  std::vector<float> out(static_cast<std::size_t>(rows * cols));
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < cols; ++j)
      out[static_cast<std::size_t>(i * cols + j)] = static_cast<float>((i * 7 + j * 3 + seed) % 5 - 2) * unit;
  return out;
}

// Adds a LoRA pair for matrix `base` (out x in) of rank r to `adapter`, and applies W += (alpha/r)·B·A to `merged`
// the way the merge is specified (the exact delta, then one rounding per element).
void add_lora(tensors& adapter, tensors& merged, const std::string& base, std::int64_t r, float alpha, int seed) {
  auto& [shape, w] = merged.t.at(base + ".weight");
  const auto out = shape[shape.size() - 2], in = shape.back();
  const auto A = factor(r, in, seed, 1.f / 8), B = factor(out, r, seed + 1, 1.f / 16);
  adapter.t[base + ".lora_A"] = {{r, in}, A};
  adapter.t[base + ".lora_B"] = {{out, r}, B};
  for (std::int64_t o = 0; o < out; ++o)
    for (std::int64_t i = 0; i < in; ++i) {
      float d = 0;
      for (std::int64_t k = 0; k < r; ++k)
        d += B[static_cast<std::size_t>(o * r + k)] * A[static_cast<std::size_t>(k * in + i)];
      w[static_cast<std::size_t>(o * in + i)] += alpha / static_cast<float>(r) * d;
    }
}

std::vector<float> logits_of(const any_model& m) {
  auto s = m.make_state();
  const std::vector<std::int32_t> tokens{1, 7, 42, 300, 5};
  const auto l = m.forward(tokens, s, logits_for::all);
  return test::flat(l);
}

void expect_error(const std::function<void()>& f, const std::string& fragment) {
  try {
    f();
    BOOST_ERROR("no error; expected: " << fragment);
  } catch (const rwkv::error& e) {
    BOOST_CHECK_MESSAGE(std::string(e.what()).find(fragment) != std::string::npos,
                        "'" << fragment << "' not in: " << e.what());
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(lora_merges_exactly_for_every_version_and_precision) {
  for (const std::string name : {"v4-dev", "v5.2-dev", "v6-dev", "v7-dev"}) {
    const auto base = test::data_path(name + ".model.safetensors");
    auto merged = tensors::of(base);
    tensors adapter;
    add_lora(adapter, merged, "blocks.0.att.key", 4, 8.f, 1);
    add_lora(adapter, merged, "blocks.1.ffn.value", 8, 16.f, 2);
    // A "train part" saved in full (RWKV-PEFT saves the LayerNorms it trained): replaces the model's.
    auto& ln = merged.t.at("blocks.0.ln1.weight");
    for (auto& x : ln.second) x *= 1.5f;
    adapter.t["blocks.0.ln1.weight"] = ln;
    const auto adapter_file = temp_file(name + ".lora.safetensors"),
               merged_file = temp_file(name + ".merged.safetensors");
    adapter.save(adapter_file);
    merged.save(merged_file);

    // The weights as the model reads them.
    const auto ck = io::open_checkpoint(base);
    io::weight_reader r(ck.path, ck.tensors, ck.owner, {.adapters = {{adapter_file, 8.f}}});
    // alpha 8 applies to both pairs here; the expected file used 16 for the second: compare the first only.
    const auto w = r.weight<float>("blocks.0.att.key.weight", merged.t.at("blocks.0.att.key.weight").first[0],
                                   merged.t.at("blocks.0.att.key.weight").first[1]);
    const auto& want = merged.t.at("blocks.0.att.key.weight").second;
    BOOST_CHECK_MESSAGE(std::equal(want.begin(), want.end(), w.data()), name << ": merged matrix differs");

    // Per-pair alpha through two adapters in sequence: split the pairs.
    tensors first, second;
    for (const auto& [n, v] : adapter.t) (n.starts_with("blocks.0.") ? first : second).t[n] = v;
    const auto f1 = temp_file(name + ".a1.safetensors"), f2 = temp_file(name + ".a2.safetensors");
    first.save(f1);
    second.save(f2);
    for (auto storage : {storage_choice::f32, storage_choice::bf16, storage_choice::q8}) {
      const auto with = any_model::load(base, storage, {.adapters = {{f1, 8.f}, {f2, 16.f}}});
      const auto saved = any_model::load(merged_file, storage);
      BOOST_CHECK_MESSAGE(logits_of(with) == logits_of(saved), name << " storage " << static_cast<int>(storage));
      BOOST_CHECK(logits_of(with) != logits_of(any_model::load(base, storage)));  // the adapter did something
    }
    // scale 0 leaves the matrices and still replaces the full tensors.
    const auto zero = any_model::load(base, storage_choice::f32, {.adapters = {{f1, 8.f, 0.f}}});
    tensors only_ln = tensors::of(base);
    only_ln.t.at("blocks.0.ln1.weight") = ln;
    const auto ln_file = temp_file(name + ".ln.safetensors");
    only_ln.save(ln_file);
    BOOST_CHECK(logits_of(zero) == logits_of(any_model::load(ln_file)));
    for (const auto& p : {adapter_file, merged_file, f1, f2, ln_file}) fs::remove(p);
  }
}

BOOST_AUTO_TEST_CASE(every_adapter_tensor_must_match_the_model) {
  const auto base = test::data_path("v7-dev.model.safetensors");
  auto merged = tensors::of(base);
  auto write = [&](const std::string& n, const tensors& t) {
    const auto p = temp_file(n);
    t.save(p);
    return p;
  };
  tensors good;
  add_lora(good, merged, "blocks.0.att.key", 4, 8.f, 1);

  tensors leftover = good;
  leftover.t["blocks.9.att.key.lora_A"] = good.t.at("blocks.0.att.key.lora_A");
  leftover.t["blocks.9.att.key.lora_B"] = good.t.at("blocks.0.att.key.lora_B");
  leftover.t["blocks.0.att.extra"] = {{2}, {1.f, 2.f}};
  const auto p1 = write("leftover.safetensors", leftover);
  expect_error(
      [&] {
        any_model::load(base, storage_choice::f32, {.adapters = {{p1, 8.f}}});
      },
      "adapter tensors with no counterpart in the model");
  expect_error([&] { any_model::load(base, storage_choice::f32, {.adapters = {{p1, 8.f}}}); }, "blocks.9.att.key");
  expect_error([&] { any_model::load(base, storage_choice::f32, {.adapters = {{p1, 8.f}}}); }, "blocks.0.att.extra");

  tensors lone = good;
  lone.t.erase("blocks.0.att.key.lora_B");
  const auto p2 = write("lone.safetensors", lone);
  expect_error(
      [&] {
        any_model::load(base, storage_choice::f32, {.adapters = {{p2, 8.f}}});
      },
      "incomplete LoRA pairs: blocks.0.att.key.lora_A without .lora_B");

  tensors misfit = good;
  misfit.t.at("blocks.0.att.key.lora_A").first = {
      2, static_cast<std::int64_t>(misfit.t.at("blocks.0.att.key.lora_A").second.size() / 2)};
  const auto p3 = write("misfit.safetensors", misfit);
  expect_error(
      [&] {
        any_model::load(base, storage_choice::f32, {.adapters = {{p3, 8.f}}});
      },
      "do not fit the model's matrix");

  const auto p4 = write("good.safetensors", good);
  expect_error([&] { any_model::load(base, storage_choice::f32, {.adapters = {{p4}}}); }, "needs its lora_alpha");
  for (const auto& p : {p1, p2, p3, p4}) fs::remove(p);
}

namespace {

// A state-tuning file as RWKV-PEFT writes it: blocks.<l>.att.time_state (H, N, N), [h][value][key], BF16.
fs::path time_state_file(const std::string& name, std::int64_t layers, std::int64_t H, std::int64_t N) {
  std::vector<io::tensor_to_write> w;
  for (std::int64_t l = 0; l < layers; ++l) {
    std::vector<bf16> v(static_cast<std::size_t>(H * N * N));
    for (std::size_t i = 0; i < v.size(); ++i)
      v[i] = from_float<bf16>(static_cast<float>((i * 13 + l * 5) % 17) / 16.f - 0.5f);
    w.push_back(io::tensor_to_write::from<bf16>("blocks." + std::to_string(l) + ".att.time_state", {H, N, N},
                                                std::span<const bf16>(v)));
  }
  const auto p = temp_file(name);
  io::save_safetensors(p, w);
  return p;
}

}  // namespace

BOOST_AUTO_TEST_CASE(state_tuned_files_give_the_initial_state) {
  // RWKV-6: the file as a separate state equals the same tensors inside the checkpoint (the official loaders'
  // time_state path, read by the model itself, with its own transpose).
  {
    const auto base = test::data_path("v6-dev.model.safetensors");
    const auto m = v6::Model<f32>::load(base);
    const auto H = m.cfg().n_head, N = m.cfg().head_size;
    const auto st = time_state_file("v6.time_state.safetensors", m.cfg().n_layer, H, N);
    auto with = tensors::of(base);
    for (const auto& [n, v] : tensors::of(st).t) with.t[n] = v;
    const auto combined = temp_file("v6.with_state.safetensors");
    with.save(combined);
    const auto tuned = load_initial_state(st, m.make_state());
    BOOST_CHECK(tuned == v6::Model<f32>::load(combined).make_state());
    BOOST_CHECK(tuned != m.make_state());
    fs::remove(st);
    fs::remove(combined);
  }
  // RWKV-7: the state keeps the file's [h][value][key] order.
  {
    const auto m = v7::Model<f32>::load(test::data_path("v7-dev.model.safetensors"));
    const auto H = m.cfg().n_head, N = m.cfg().head_size, L = m.cfg().n_layer;
    const auto st = time_state_file("v7.time_state.safetensors", L, H, N);
    const auto tuned = load_initial_state(st, m.make_state());
    const auto f = io::safetensors_file::open(st);
    for (std::int64_t l = 0; l < L; ++l) {
      const auto want = test::floats(f.at("blocks." + std::to_string(l) + ".att.time_state"));
      BOOST_CHECK(tuned.layers[static_cast<std::size_t>(l)].att.wkv == want);
      BOOST_CHECK(std::all_of(tuned.layers[static_cast<std::size_t>(l)].att.shift.begin(),
                              tuned.layers[static_cast<std::size_t>(l)].att.shift.end(),
                              [](float x) { return x == 0; }));
    }
    // Through any_model, and an rwkvpp state file through the same call.
    const auto any = any_model::load(test::data_path("v7-dev.model.safetensors"));
    BOOST_CHECK(any.load_initial_state(st) != any.make_state());
    auto s = any.make_state();
    any.step(3, s);
    const auto saved = temp_file("v7.state");
    save_state(saved, s);
    BOOST_CHECK(any.load_initial_state(saved) == s);

    // Refusals, naming the file and the tensor.
    const auto short_file = time_state_file("v7.short.safetensors", L - 1, H, N);
    expect_error([&] { load_initial_state(short_file, m.make_state()); },
                 "blocks." + std::to_string(L - 1) + ".att.time_state");
    const auto wrong = time_state_file("v7.wrong.safetensors", L, H * 2, N / 2 > 0 ? N / 2 : 1);
    expect_error([&] { load_initial_state(wrong, m.make_state()); }, "does not match the model's WKV state");
    expect_error([&] { load_initial_state(test::data_path("v7-dev.model.safetensors"), m.make_state()); },
                 "this is a model checkpoint, not a state file");
    const auto v4 = v4::Model<f32>::load(test::data_path("v4-dev.model.safetensors"));
    expect_error([&] { load_initial_state(st, v4.make_state()); }, "this model is RWKV-4");
    for (const auto& p : {st, saved, short_file, wrong}) fs::remove(p);
  }
}

// load_options::progress (rwkv-cli's loading bar): monotonic byte counts ending at the file's total.
BOOST_AUTO_TEST_CASE(loading_reports_progress) {
  std::vector<std::pair<std::int64_t, std::int64_t>> calls;
  const auto m = any_model::load(test::data_path("v7-dev.model.safetensors"), storage_choice::f32,
                                 {.progress = [&](std::int64_t d, std::int64_t t) { calls.emplace_back(d, t); }});
  BOOST_REQUIRE(calls.size() > 10);
  std::int64_t total_bytes = 0;
  const auto file = io::safetensors_file::open(test::data_path("v7-dev.model.safetensors"));
  for (const auto& t : file.tensors()) total_bytes += static_cast<std::int64_t>(t.nbytes);
  for (std::size_t i = 0; i < calls.size(); ++i) {
    BOOST_CHECK_EQUAL(calls[i].second, total_bytes);
    if (i > 0) BOOST_CHECK(calls[i].first >= calls[i - 1].first);
  }
  BOOST_CHECK_EQUAL(calls.back().first, total_bytes);
  BOOST_CHECK(m.info().parameters > 0);
}
