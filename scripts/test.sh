#!/usr/bin/env bash
# One command from a fresh clone to a tested library: installs what is missing, builds everything with
# -Wall -Wextra -Werror, runs the test suite, and builds a consumer project both ways (find_package and
# add_subdirectory). With --sanitize it does the same in build-asan/ under AddressSanitizer + UBSan; with
# --tsan it builds and runs the concurrency tests under ThreadSanitizer in build-tsan/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

build=build
# Every option forced, so a build/ folder configured otherwise before (by hand) still builds the whole suite.
flags=(-DCMAKE_BUILD_TYPE=Release -DRWKV_BUILD_TESTS=ON -DRWKV_BUILD_TOOLS=ON -DRWKV_BUILD_EXAMPLES=ON -DRWKV_BUILD_BENCHMARKS=ON)
jobs=$(nproc)
if [ "${1:-}" = "--sanitize" ]; then
  build=build-asan
  # -O1 -g1: line tables are all a sanitizer report needs, and they halve the compile time of -O2 -g (CI has 2 cores).
  # UBSan without its per-access checks (alignment, null, pointer-overflow, object-size, vptr) halves it again: ASan
  # already checks every access; the arithmetic checks (overflow, shifts, bounds, float casts, enums) stay.
  # The examples run in the Release build; here they would only add compile time.
  flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG"
    -DRWKV_SANITIZE=address,undefined -DRWKV_SANITIZE_OPTIONS=-fno-sanitize=alignment,null,pointer-overflow,object-size,vptr
    -DRWKV_BUILD_TESTS=ON -DRWKV_BUILD_TOOLS=ON
    -DRWKV_BUILD_BENCHMARKS=OFF -DRWKV_BUILD_EXAMPLES=OFF -DRWKV_NATIVE=OFF)
elif [ "${1:-}" = "--tsan" ]; then
  cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" -DRWKV_SANITIZE=thread -DRWKV_BUILD_BENCHMARKS=OFF -DRWKV_NATIVE=OFF
  cmake --build build-tsan -j "$jobs" --target thread_safety_test batch_test
  (cd build-tsan && ctest --no-tests=error --output-on-failure -R "^(thread_safety_test|batch_test)$")
  exit 0
fi

cmake -S . -B "$build" -G Ninja "${flags[@]}"
cmake --build "$build" -j "$jobs"
(cd "$build" && ctest --no-tests=error --output-on-failure -j "$jobs")

if [ "$build" = build ]; then
  # Consumer project: installed package + find_package, then add_subdirectory.
  rm -rf build/consumer-prefix build/consumer-a build/consumer-b
  cmake --install build --prefix build/consumer-prefix >/dev/null
  cmake -S tests/consumer -B build/consumer-a -G Ninja -DCMAKE_PREFIX_PATH="$PWD/build/consumer-prefix" >/dev/null
  cmake --build build/consumer-a
  build/consumer-a/consumer tests/data/tiny-7v0.model.safetensors
  cmake -S tests/consumer -B build/consumer-b -G Ninja -DRWKVPP_SOURCE_DIR="$PWD" >/dev/null
  cmake --build build/consumer-b
  build/consumer-b/consumer tests/data/tiny-7v0.model.safetensors
  echo "consumer project: find_package and add_subdirectory both OK"
fi
