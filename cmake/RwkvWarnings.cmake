# Strict warnings and optional sanitizers for the project's own executables (never forced on consumers).
function(rwkv_strict target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror)
  if(RWKV_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${RWKV_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
    target_link_options(${target} PRIVATE -fsanitize=${RWKV_SANITIZE})
  endif()
endfunction()

# -march=native for the programs whose speed matters (the library itself takes whatever flags the user has).
include(CheckCXXCompilerFlag)
check_cxx_compiler_flag(-march=native RWKV_HAVE_MARCH_NATIVE)
function(rwkv_native target)
  if(RWKV_NATIVE AND RWKV_HAVE_MARCH_NATIVE)
    # GCC 12 reports false maybe-uninitialized warnings inside its own AVX-512 intrinsic headers.
    target_compile_options(${target} PRIVATE -march=native -Wno-maybe-uninitialized)
  endif()
endfunction()
