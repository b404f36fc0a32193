#pragma once
// Backend tags and what they select (docs/backends.md). A tag names where the arithmetic runs; backend_traits<B>
// says where data lives (memory space, the types of activations and state tensors) and ops<B> (backend/*.hpp) is
// the set of operations the mixers are written against. The primary templates refuse unknown or unavailable
// backends with a sentence; a backend header (backend/cpu.hpp, the CUDA one) specialises both.

#include <cstddef>
#include <type_traits>

#include <xsimd/xsimd.hpp>

namespace rwkv {

// Memory spaces. Data is typed by where it lives, so that a kernel of one space given memory of another does not
// compile (the way CuTe tags its pointers).
struct host_memory {
  static constexpr const char* name = "host";
};
struct device_memory {
  static constexpr const char* name = "device";
};

// CPU backend. Arch is an xsimd architecture tag; the default is the best one the compiler was told about.
template <class Arch = xsimd::default_arch>
struct cpu {
  using arch = Arch;
};

namespace arch {
// NVIDIA architectures with the facts kernels are chosen by (CUTLASS's arch::Sm80/Sm90 carry theirs the same way).
template <int SM>
struct sm {
  static constexpr int value = SM;
  static constexpr std::size_t shared_memory_per_block = SM >= 90 ? 227 * 1024 : SM >= 80 ? 163 * 1024 : 48 * 1024;
  static constexpr int tensor_core_generation = SM >= 90 ? 4 : SM >= 80 ? 3 : SM >= 70 ? 1 : 0;
  static constexpr bool async_copy = SM >= 80;  // cp.async
  static constexpr bool tma = SM >= 90;         // tensor memory accelerator
  static constexpr bool bf16_tensor_cores = SM >= 80;
};
using sm80 = sm<80>;
using sm90 = sm<90>;
}  // namespace arch

// CUDA backend tag. Declared so that code can name it; a CUDA backend will specialise backend_traits and ops for
// it. Until then using it is a compile error with a sentence.
template <class Arch = arch::sm80>
struct cuda {
  using arch = Arch;
};

template <class B>
inline constexpr bool dependent_false = false;

template <class B>
struct is_cuda_tag : std::false_type {};
template <class Arch>
struct is_cuda_tag<cuda<Arch>> : std::true_type {};

// What a backend tag selects. The primary template is the error path.
template <class B>
struct backend_traits {
  static_assert(!is_cuda_tag<B>::value,
                "rwkv: the CUDA backend is not implemented in this version of rwkvpp (the rwkv::cuda<> tag is "
                "reserved for it): use rwkv::cpu<>");
  static_assert(is_cuda_tag<B>::value, "rwkv: unknown backend tag; use rwkv::cpu<>");
  static constexpr bool available = false;
};

template <class Arch>
struct backend_traits<cpu<Arch>> {
  static constexpr bool available = true;
  static constexpr const char* name = "cpu";
  using memory_space = host_memory;
  using arch = Arch;
};

// The operations of backend B (backend/cpu.hpp); the primary template is the error path.
template <class B>
struct ops {
  static_assert(dependent_false<B>,
                "rwkv: no operations for this backend tag: include its backend header (<rwkv/backend/cpu.hpp> for "
                "rwkv::cpu<>)");
};

// Instantiating this checks that B can be used (and produces the sentence above if it cannot).
template <class B>
concept Backend = backend_traits<B>::available;

// B when it is a usable backend; otherwise backend_traits' sentence, and cpu<> so that the instantiation goes on
// without a cascade of follow-up errors (the public model aliases take their B through this).
template <class B>
using checked_backend = std::conditional_t<Backend<B>, B, cpu<>>;

template <class B>
using memory_space_of = typename backend_traits<B>::memory_space;

}  // namespace rwkv
