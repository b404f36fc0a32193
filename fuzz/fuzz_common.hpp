#pragma once
// Shared by the libFuzzer targets: any rwkv::error is an accepted outcome (the input was refused with a
// message); anything else — a crash, a sanitizer report, another exception type — is a bug.

#include <cstddef>
#include <cstdint>
#include <span>

#include <rwkv/core/error.hpp>

#define RWKV_FUZZ_TARGET(body)                                                              \
  extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {       \
    const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size); \
    try {                                                                                   \
      body                                                                                  \
    } catch (const rwkv::error&) {                                                          \
    }                                                                                       \
    return 0;                                                                               \
  }
