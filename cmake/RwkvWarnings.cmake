# -march=native for this build's own targets when RWKV_NATIVE is on (rwkv::rwkv itself takes whatever flags the
# user has; a user selects this ISA by linking rwkv::native). RWKV_HAVE_MARCH_NATIVE comes from CMakeLists.txt.
function(rwkv_native target)
  if(RWKV_NATIVE AND RWKV_HAVE_MARCH_NATIVE)
    # GCC 12 reports false maybe-uninitialized warnings inside its own AVX-512 intrinsic headers (clang has no
    # such option and rejects it under -Werror).
    target_compile_options(${target} PRIVATE -march=native $<$<CXX_COMPILER_ID:GNU>:-Wno-maybe-uninitialized>)
  endif()
endfunction()

# Strict warnings, the build's ISA and optional sanitizers for the project's own targets (never forced on
# consumers). Every target of this build gets the same -march, so no inline function is ever compiled for two
# ISAs in one program (rwkv-cli and the tests link the prebuilt any_model instantiations).
function(rwkv_strict target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror)
  rwkv_native(${target})
  if(RWKV_SANITIZE)
    # RWKV_SANITIZE_OPTIONS come last: a -fno-sanitize=... before -fsanitize=undefined would be undone by it.
    target_compile_options(${target} PRIVATE -fsanitize=${RWKV_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all
                                             ${RWKV_SANITIZE_OPTIONS})
    target_link_options(${target} PRIVATE -fsanitize=${RWKV_SANITIZE})
  endif()
endfunction()

