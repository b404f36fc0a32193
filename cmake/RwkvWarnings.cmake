# Strict warnings and optional sanitizers for the project's own executables (never forced on consumers).
function(rwkv_strict target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror)
  if(RWKV_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${RWKV_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
    target_link_options(${target} PRIVATE -fsanitize=${RWKV_SANITIZE})
  endif()
endfunction()
