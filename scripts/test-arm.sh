#!/usr/bin/env bash
# The NEON build: cross-compiles the kernel and golden tests for 64-bit ARM (aarch64-linux-gnu-g++, NEON is part
# of the base ISA there, so xsimd picks neon64) and runs them under qemu-aarch64 against the same reference
# files as the x86 build. Boost.Test is used header-only here (no ARM libboost needed); Eigen and xsimd are
# header-only anyway. Installs the cross compiler and qemu-user when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
RWKV_WITH_ARM=1 scripts/install-deps.sh

# The packed fixtures (cmake/RwkvTestData.cmake does this at configure time).
[ -e tests/data/.packed-unpacked ] || (cd tests/data && cmake -E tar xf packed.tar.xz && cmake -E touch .packed-unpacked)

out=build-arm
mkdir -p "$out"
tests=(kernel/wkv_chunked_test v7/golden_test v6/golden_test v5/golden_test v4/golden_test)
# One compiler per core: the cross builds are most of this script's time.
build_one() {
  local t=$1 name=${1//\//_}
  # The test's own source with the header-only Boost.Test runner in place of the shared-library one.
  sed 's#<boost/test/unit_test.hpp>#<boost/test/included/unit_test.hpp>#' "tests/$t.cpp" >"$out/$name.cpp"
  echo "aarch64: building $name"
  aarch64-linux-gnu-g++ -std=c++20 -O2 -Wall -Wextra -Werror -Wno-maybe-uninitialized -Iinclude \
    -isystem /usr/include/eigen3 -idirafter /usr/include -iquote "tests/$(dirname "$t")" \
    -DRWKV_TEST_DATA_DIR="\"$PWD/tests/data\"" "$out/$name.cpp" -o "$out/$name" -pthread
}
export -f build_one
export out
printf '%s\n' "${tests[@]}" | xargs -P "$(nproc)" -I{} bash -c 'build_one {}'
printf '#include <cstdio>\n#include <xsimd/xsimd.hpp>\nint main() { std::puts(xsimd::default_arch::name()); }\n' >"$out/isa.cpp"
aarch64-linux-gnu-g++ -std=c++20 -O2 -idirafter /usr/include "$out/isa.cpp" -o "$out/isa"
echo "aarch64: kernels built for $(qemu-aarch64 -L /usr/aarch64-linux-gnu "$out/isa")"
for t in "${tests[@]}"; do
  name=${t//\//_}
  echo "aarch64 (qemu): $name"
  qemu-aarch64 -L /usr/aarch64-linux-gnu "$out/$name" --log_level=test_suite --report_level=short
done
echo "aarch64 NEON build: all tests passed"
