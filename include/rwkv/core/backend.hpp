#pragma once
// Backend tags. A tag selects where the arithmetic runs; everything that depends on it goes through
// backend_traits, whose primary template refuses unknown or unavailable backends with a sentence.

#include <type_traits>

#include <xsimd/xsimd.hpp>

namespace rwkv {

// CPU backend. Arch is an xsimd architecture tag; the default is the best one the compiler was told about.
template <class Arch = xsimd::default_arch>
struct cpu {
  using arch = Arch;
};

namespace arch {
template <int SM>
struct sm {
  static constexpr int value = SM;
};
using sm80 = sm<80>;
using sm90 = sm<90>;
}  // namespace arch

// CUDA backend tag. Declared so that code can name it; usable only once <rwkv/cuda.hpp> provides it.
template <class Arch = arch::sm80>
struct cuda {
  using arch = Arch;
};

template <class B>
inline constexpr bool dependent_false = false;

template <class B>
struct backend_traits {
  static_assert(dependent_false<B>,
                "rwkv: unknown backend tag; use rwkv::cpu<> (or rwkv::cuda<> with <rwkv/cuda.hpp>)");
};

template <class Arch>
struct backend_traits<cpu<Arch>> {
  static constexpr bool available = true;
  static constexpr const char* name = "cpu";
};

template <class Arch>
struct backend_traits<cuda<Arch>> {
  static_assert(dependent_false<Arch>,
                "rwkv: the CUDA backend is not available in this build: include <rwkv/cuda.hpp> and compile with "
                "nvcc, or use rwkv::cpu<>");
  static constexpr bool available = false;
};

// Instantiating this checks that B can be used (and produces the sentence above if it cannot).
template <class B>
concept Backend = backend_traits<B>::available;

}  // namespace rwkv
