#pragma once
// Runtime entry point: open any supported checkpoint, detect its RWKV version and head size, and get a model
// of the right compiled type behind one interface. Use the concrete types (rwkv::v7::Model<...>) when the
// version is known at compile time; use this when it comes from a file (CLIs, servers, bindings).

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "rwkv/core/error.hpp"
#include "rwkv/core/precision.hpp"
#include "rwkv/detect.hpp"
#include "rwkv/io/checkpoint.hpp"
#include "rwkv/io/weight_reader.hpp"
#include "rwkv/model/language_model.hpp"
#include "rwkv/state_file.hpp"
#include "rwkv/v4.hpp"
#include "rwkv/v5.hpp"
#include "rwkv/v6.hpp"
#include "rwkv/v7.hpp"
#include "rwkv/v7a.hpp"
#include "rwkv/v7b.hpp"

namespace rwkv {

namespace detail {
// Defined by the prebuilt any_model library for the ISA it was compiled for (see the end of this file).
template <class Arch, int EigenAlignBytes>
struct any_model_library_isa {
  static const int same_as_this_translation_unit;
};
}  // namespace detail

// Weight storage chosen at run time.
enum class storage_choice { f32, bf16, f16, q8, q4 };

inline storage_choice parse_storage(const std::string& s) {
  if (s == "f32") return storage_choice::f32;
  if (s == "bf16") return storage_choice::bf16;
  if (s == "f16") return storage_choice::f16;
  if (s == "q8") return storage_choice::q8;
  if (s == "q4") return storage_choice::q4;
  throw error("unknown precision '" + s + "' (supported: f32, bf16, f16, q8, q4)");
}

struct model_info {
  std::string version;  // "4", "5.0", "5.1", "5.2", "6", "7", "7a", "7b"
  std::int64_t n_layer = 0, n_embd = 0, n_head = 0, head_size = 0, vocab = 0, dim_ffn = 0, parameters = 0;
  // Memory of one state: a fresh one (float32 throughout), and what it grows by per token fed (RWKV-7b's key/value
  // cache; 0 for every constant-size state).
  std::int64_t state_bytes = 0, state_bytes_per_token = 0;
  std::string file_dtype;  // what the file stores, e.g. "F32" or "BF16"
  std::string format;      // "safetensors", "pth", "rwkv.cpp"
  // Elements held in the chosen storage type (the weight matrices, embedding and head included); the other
  // parameters (vectors, norms, low-rank factors) are float32.
  std::int64_t weight_elements = 0;
};

class any_state {
 public:
  struct concept_t {
    virtual ~concept_t() = default;
    virtual std::unique_ptr<concept_t> clone() const = 0;
    virtual bool equals(const concept_t& other) const = 0;
    virtual std::vector<std::byte> to_bytes() const = 0;
    virtual void save(const std::filesystem::path& path) const = 0;
    virtual std::unique_ptr<concept_t> load(const std::filesystem::path& path) const = 0;
  };
  template <class S>
  struct model_t final : concept_t {
    explicit model_t(S s) : value(std::move(s)) {}
    std::unique_ptr<concept_t> clone() const override { return std::make_unique<model_t>(value); }
    bool equals(const concept_t& other) const override {
      auto* o = dynamic_cast<const model_t*>(&other);
      return o && o->value == value;
    }
    std::vector<std::byte> to_bytes() const override { return value.to_bytes(); }
    void save(const std::filesystem::path& path) const override { save_state(path, value); }
    std::unique_ptr<concept_t> load(const std::filesystem::path& path) const override {
      return std::make_unique<model_t>(rwkv::load_state(path, value));
    }
    S value;
  };

  any_state() = default;
  explicit any_state(std::unique_ptr<concept_t> p) : p_(std::move(p)) {}
  any_state(const any_state& o) : p_(o.p_ ? o.p_->clone() : nullptr) {}
  any_state(any_state&&) noexcept = default;
  any_state& operator=(const any_state& o) {
    if (this != &o) p_ = o.p_ ? o.p_->clone() : nullptr;
    return *this;
  }
  any_state& operator=(any_state&&) noexcept = default;
  friend bool operator==(const any_state& a, const any_state& b) {
    return a.p_ && b.p_ ? a.p_->equals(*b.p_) : a.p_ == b.p_;
  }

  std::vector<std::byte> to_bytes() const { return get().to_bytes(); }
  // Writes the state as a safetensors state file (see rwkv/state_file.hpp).
  void save(const std::filesystem::path& path) const { get().save(path); }
  // Reads a state file written for the same model type as this state (see rwkv::load_state).
  any_state load(const std::filesystem::path& path) const { return any_state(get().load(path)); }
  // Whether this holds a state (a default-constructed any_state does not).
  explicit operator bool() const noexcept { return p_ != nullptr; }

  // The concrete state (e.g. rwkv::v7::State) when its type is known; throws rwkv::error otherwise.
  template <class S>
  S& as() {
    auto* m = dynamic_cast<model_t<S>*>(&get());
    if (!m) throw error("the state belongs to another model (make states with this model's make_state())");
    return m->value;
  }

 private:
  const concept_t& get() const {
    if (!p_) throw error("the state is empty (a default-constructed any_state): make one with model.make_state()");
    return *p_;
  }
  concept_t& get() {
    if (!p_) throw error("the state is empty (a default-constructed any_state): make one with model.make_state()");
    return *p_;
  }
  std::unique_ptr<concept_t> p_;
};

class any_model {
 public:
  using state_type = any_state;

  struct concept_t {
    virtual ~concept_t() = default;
    virtual any_state make_state() const = 0;
    virtual row_matrix forward(std::span<const std::int32_t> tokens, any_state& s, logits_for which,
                               thread_pool* pool) const = 0;
    virtual row_matrix forward_batch(std::span<const std::int32_t> tokens, std::span<any_state* const> states,
                                     thread_pool* pool) const = 0;
    virtual any_state state_from_bytes(std::span<const std::byte> bytes, const std::string& source) const = 0;
    virtual any_state load_state(const std::filesystem::path& path) const = 0;
    virtual any_state load_initial_state(const std::filesystem::path& path) const = 0;
  };

  template <class M>
  struct model_t final : concept_t {
    explicit model_t(M m) : model(std::move(m)) {}
    using S = typename M::state_type;
    any_state make_state() const override {
      return any_state(std::make_unique<any_state::model_t<S>>(model.make_state()));
    }
    row_matrix forward(std::span<const std::int32_t> tokens, any_state& s, logits_for which,
                       thread_pool* pool) const override {
      return model.forward(tokens, s.as<S>(), which, pool);
    }
    row_matrix forward_batch(std::span<const std::int32_t> tokens, std::span<any_state* const> states,
                             thread_pool* pool) const override {
      std::vector<S*> typed(states.size());
      for (std::size_t i = 0; i < states.size(); ++i) {
        if (!states[i]) throw error("forward_batch: null state for row " + std::to_string(i));
        typed[i] = &states[i]->as<S>();
      }
      return model.forward_batch(tokens, std::span<S* const>(typed), pool);
    }
    any_state state_from_bytes(std::span<const std::byte> bytes, const std::string& source) const override {
      return any_state(std::make_unique<any_state::model_t<S>>(S::from_bytes(bytes, model.make_state(), source)));
    }
    any_state load_state(const std::filesystem::path& path) const override {
      return any_state(std::make_unique<any_state::model_t<S>>(rwkv::load_state(path, model.make_state())));
    }
    any_state load_initial_state(const std::filesystem::path& path) const override {
      return any_state(std::make_unique<any_state::model_t<S>>(rwkv::load_initial_state(path, model.make_state())));
    }
    M model;
  };

  // Opens `path` (safetensors, .pth or rwkv.cpp; recognised by content) with the chosen weight storage. A file
  // written by `rwkv-cli quantize` loads with its own format without quantizing again, or dequantized with
  // f32/bf16/f16; the other quantized format is refused (io/quantized.hpp).
  static any_model load(const std::filesystem::path& path, storage_choice storage = storage_choice::f32,
                        io::load_options options = {}) {
    auto file = io::open_checkpoint(path);
    io::weight_reader reader(file.path, file.tensors, file.owner, options);
    return from_reader(reader, file, storage);
  }

  // The model of an opened checkpoint, read through `reader` (a reader over file's tensors); afterwards the
  // reader tells what the model read (weight_reader::weight_shapes: the matrices a quantized model quantizes).
  static any_model from_reader(io::weight_reader& reader, const io::checkpoint& file, storage_choice storage) {
#ifdef RWKV_ANY_MODEL_PREBUILT
    // The ISA check of the prebuilt library (end of this file) once more, where no linker drops it as unused.
    static_cast<void>(*static_cast<const volatile int*>(
        &detail::any_model_library_isa<xsimd::default_arch, EIGEN_MAX_ALIGN_BYTES>::same_as_this_translation_unit));
#endif
    const auto version = detect_version(file.tensors, file.path);
    any_model m;
    m.info_.version = version_name(version);
    m.info_.format = io::format_name(file.format);
    m.info_.file_dtype = dtype_summary(file.tensors);
    switch (storage) {
      case storage_choice::f32:
        m.build<f32>(version, reader);
        break;
      case storage_choice::bf16:
        m.build<bf16_weights>(version, reader);
        break;
      case storage_choice::f16:
        m.build<f16_weights>(version, reader);
        break;
      case storage_choice::q8:
        m.build<q8_weights>(version, reader);
        break;
      case storage_choice::q4:
        m.build<q4_weights>(version, reader);
        break;
    }
    for (const auto& [name, shape] : reader.weight_shapes()) m.info_.weight_elements += shape.first * shape.second;
    return m;
  }

  const model_info& info() const noexcept { return info_; }
  any_state make_state() const { return impl().make_state(); }

  std::vector<float> step(std::int32_t token, any_state& s, thread_pool* pool = nullptr) const {
    const std::int32_t t[1] = {token};
    const auto l = impl().forward(t, s, logits_for::last, pool);
    return {l.data(), l.data() + l.size()};
  }
  std::vector<float> prefill(std::span<const std::int32_t> tokens, any_state& s, thread_pool* pool = nullptr) const {
    const auto l = impl().forward(tokens, s, logits_for::last, pool);
    return {l.data(), l.data() + l.size()};
  }
  row_matrix forward(std::span<const std::int32_t> tokens, any_state& s, logits_for which,
                     thread_pool* pool = nullptr) const {
    return impl().forward(tokens, s, which, pool);
  }
  // One token for each of several sequences (row i: tokens[i] fed to *states[i]), in one call whose weights are
  // read once for all rows; row i of the result is that sequence's logits (see rwkv::Batch).
  row_matrix forward_batch(std::span<const std::int32_t> tokens, std::span<any_state* const> states,
                           thread_pool* pool = nullptr) const {
    if (tokens.size() != states.size())
      throw error("forward_batch: " + std::to_string(tokens.size()) + " tokens for " + std::to_string(states.size()) +
                  " states");
    return impl().forward_batch(tokens, states, pool);
  }
  any_state state_from_bytes(std::span<const std::byte> bytes, const std::string& source = "<bytes>") const {
    return impl().state_from_bytes(bytes, source);
  }
  // Reads a state file written by any_state::save / rwkv::save_state for a model of this shape.
  any_state load_state(const std::filesystem::path& path) const { return impl().load_state(path); }
  // A state to start from: an rwkvpp state file or a state-tuning file of att.time_state tensors (RWKV-PEFT's),
  // see rwkv::load_initial_state.
  any_state load_initial_state(const std::filesystem::path& path) const { return impl().load_initial_state(path); }

 private:
  // The dtypes of the file, e.g. "F32" or "BF16"; pre-quantized matrices count as their format ("F32+Q8").
  static std::string dtype_summary(const std::vector<tensor_view>& tensors) {
    std::vector<std::string> kinds;
    for (const auto& t : tensors) {
      std::string n = dtype_name(t.type);
      if (t.quantized) {
        n = t.quantized->format;
        for (auto& ch : n) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      }
      if (std::find(kinds.begin(), kinds.end(), n) == kinds.end()) kinds.push_back(n);
    }
    std::sort(kinds.begin(), kinds.end());
    std::string s;
    for (const auto& k : kinds) {
      if (!s.empty()) s += '+';
      s += k;
    }
    return s;
  }

  template <class M>
  void adopt(M model) {
    const auto& c = model.cfg();
    info_.n_layer = c.n_layer;
    info_.n_embd = c.n_embd;
    info_.vocab = c.vocab;
    info_.dim_ffn = c.dim_ffn;
    if constexpr (requires { c.head_size; }) {
      info_.n_head = c.n_head;
      info_.head_size = c.head_size;
    }
    info_.parameters = model.parameter_count();
    for (const auto& layer : model.make_state().layers)
      layer.visit([&](const std::string&, const std::vector<float>& v) {
        info_.state_bytes += static_cast<std::int64_t>(v.size() * sizeof(float));
      });
    if constexpr (requires { model.blocks().front().branch().cache_bytes_per_token(); })
      for (const auto& b : model.blocks()) info_.state_bytes_per_token += b.branch().cache_bytes_per_token();
    impl_ = std::make_shared<model_t<M>>(std::move(model));
  }

  // Instantiates the model type for the file's head size among the compiled ones.
  template <template <class, class, int> class ModelT, class P>
  void build_with_head_size(io::weight_reader& r, std::int64_t head_size, const std::string& tensor) {
    // Every released v5/v6/v7 model uses head size 64. The research sizes (8, 32, 128) are compiled for f32 and
    // bf16 storage only, which keeps the instantiations (and compile time) of this dispatcher in check.
    constexpr bool research_sizes =
        std::is_same_v<typename P::weight_type, float> || std::is_same_v<typename P::weight_type, bf16>;
    if (head_size == 64) return adopt(ModelT<P, cpu<>, 64>::from_reader(r));
    if constexpr (research_sizes) {
      if (head_size == 32) return adopt(ModelT<P, cpu<>, 32>::from_reader(r));
      if (head_size == 128) return adopt(ModelT<P, cpu<>, 128>::from_reader(r));
      if (head_size == 8) return adopt(ModelT<P, cpu<>, 8>::from_reader(r));
      r.fail("head size " + std::to_string(head_size) + " is not supported (supported: 8, 32, 64, 128)", tensor);
    } else {
      r.fail("head size " + std::to_string(head_size) +
                 " is not supported with this weight precision (64 is; 8, 32 and "
                 "128 are with f32 or bf16)",
             tensor);
    }
  }

  // Defined after the class: not inline, so that `extern template` (RWKV_ANY_MODEL_EXTERN) keeps a compiler that
  // optimises from instantiating it for inlining, which is most of the compile time of a program using the
  // prebuilt instantiations.
  template <class P>
  void build(arch_version v, io::weight_reader& r);

  template <class P, class B, int N>
  using v5_model = v5::Model<P, B, N>;
  template <class P, class B, int N>
  using v6_model = v6::Model<P, B, N>;
  template <class P, class B, int N>
  using v7_model = v7::Model<P, B, N>;

  const concept_t& impl() const {
    if (!impl_) throw error("empty model (use any_model::load)");
    return *impl_;
  }

  model_info info_;
  std::shared_ptr<const concept_t> impl_;  // immutable, so copies of any_model share it safely
};

template <class P>
void any_model::build(arch_version v, io::weight_reader& r) {
  switch (v) {
    case arch_version::v4:
      adopt(v4::Model<P>::from_reader(r));
      return;
    case arch_version::v5_0:
    case arch_version::v5_1:
    case arch_version::v5_2:
      build_with_head_size<v5_model, P>(r, v5::Config::from(r).head_size, "blocks.0.att.time_decay");
      return;
    case arch_version::v6:
      build_with_head_size<v6_model, P>(r, v6::Config::from(r).head_size, "blocks.0.att.time_faaaa");
      return;
    case arch_version::v7:
      build_with_head_size<v7_model, P>(r, v7::Config::from(r).head_size, "blocks.0.att.r_k");
      return;
    case arch_version::v7a:
    case arch_version::v7b: {
      // The released variants use head size 64 only, which keeps the instantiations in check.
      const auto head_size = v7::Config::from(r).head_size;
      if (head_size != 64)
        r.fail("head size " + std::to_string(head_size) + " is not supported for RWKV-" + version_name(v) +
                   " (64 is, as in every released model)",
               "blocks.0.att.r_k");
      if (v == arch_version::v7a)
        adopt(v7a::Model<P>::from_reader(r));
      else
        adopt(v7b::Model<P>::from_reader(r));
      return;
    }
  }
}

// rwkv::save_state and rwkv::load_state for the type-erased state, as for the typed ones (state_file.hpp): the
// file must have been written for the same model type (version, layers, sizes), else rwkv::error says which.
inline void save_state(const std::filesystem::path& path, const any_state& s) { s.save(path); }
inline any_state load_state(const std::filesystem::path& path, const any_state& like) { return like.load(path); }

}  // namespace rwkv

// any_model::load instantiates every version and head size for each weight storage, which is most of the
// compile time of a program that uses it. Such a program can spread the work over translation units:
//   in one .cpp per storage type:          RWKV_ANY_MODEL_INSTANTIATE(rwkv::bf16_weights)
//   in the .cpp that calls any_model::load: RWKV_ANY_MODEL_EXTERN(rwkv::bf16_weights)
// (the CMake target rwkv::any_model does this; see src/CMakeLists.txt.)
#define RWKV_ANY_MODEL_EXTERN(P) \
  extern template void rwkv::any_model::build<P>(rwkv::arch_version, rwkv::io::weight_reader&);
#define RWKV_ANY_MODEL_INSTANTIATE(P) \
  template void rwkv::any_model::build<P>(rwkv::arch_version, rwkv::io::weight_reader&);

// The prebuilt instantiations (the CMake target rwkv::any_model) are compiled for one ISA, and a program that
// links them must compile every translation unit that includes this header for the same one: the inline functions
// of the library and of the program are merged by the linker, and Eigen's alignment follows the ISA, so a mix
// crashes. rwkv::any_model passes its ISA flags on; this check turns a mix that happens anyway (flags set by hand)
// into a link error that names this translation unit's ISA and Eigen alignment, such as
//   undefined reference to `rwkv::detail::any_model_library_isa<xsimd::sse2, 16>::same_as_this_translation_unit'
// The library defines the member for its own ISA only (RWKV_ANY_MODEL_DEFINE_ISA); the struct is declared at the
// top of this file.
// clang-format off
#define RWKV_ANY_MODEL_DEFINE_ISA                                                                   \
  template <>                                                                                       \
  const int rwkv::detail::any_model_library_isa<xsimd::default_arch, EIGEN_MAX_ALIGN_BYTES>::       \
      same_as_this_translation_unit = 1;
// clang-format on

// Defined by the build of this repository when its prebuilt instantiations are linked.
#ifdef RWKV_ANY_MODEL_PREBUILT
RWKV_ANY_MODEL_EXTERN(rwkv::f32)
RWKV_ANY_MODEL_EXTERN(rwkv::bf16_weights)
RWKV_ANY_MODEL_EXTERN(rwkv::f16_weights)
RWKV_ANY_MODEL_EXTERN(rwkv::q8_weights)
RWKV_ANY_MODEL_EXTERN(rwkv::q4_weights)
namespace rwkv::detail {
// One reference per translation unit, kept by the compiler even though nothing reads it.
[[maybe_unused, gnu::used]] static const int* const any_model_isa_check =
    &any_model_library_isa<xsimd::default_arch, EIGEN_MAX_ALIGN_BYTES>::same_as_this_translation_unit;
}  // namespace rwkv::detail
#endif
