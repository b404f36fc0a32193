# Test fixtures that compress well (trained tiny models) or are large (the RWKV-7a/7b dev models) are kept in the
# repository as tests/data/packed.tar.xz, which keeps a clone small enough to travel; they are unpacked next to it
# at configure time (CMake's own libarchive, no xz tool needed), again whenever the archive changes. The unpacked
# files are ignored by git. scripts/test-arm.sh, which does not configure, unpacks the same way.
function(rwkv_unpack_test_data)
  set(dir ${PROJECT_SOURCE_DIR}/tests/data)
  set(archive ${dir}/packed.tar.xz)
  set(stamp ${dir}/.packed-unpacked)
  if(NOT EXISTS ${archive})
    return()
  endif()
  set_property(DIRECTORY ${PROJECT_SOURCE_DIR} APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${archive})
  if(NOT EXISTS ${stamp} OR ${archive} IS_NEWER_THAN ${stamp})
    file(ARCHIVE_EXTRACT INPUT ${archive} DESTINATION ${dir})
    file(TOUCH ${stamp})
  endif()
endfunction()
