# Debian's xsimd package links the target `xtl` without finding it. xsimd uses xtl only for optional
# xtl::xcomplex support, so take xtl when it is installed and otherwise stand in an empty target.
if(NOT TARGET xtl)
  find_package(xtl QUIET)
  if(NOT TARGET xtl)
    add_library(xtl INTERFACE IMPORTED)
  endif()
endif()
find_package(xsimd REQUIRED)
