#!/usr/bin/env bash
# One command from a fresh clone to a tested library: installs what is missing, builds everything with
# -Wall -Wextra -Werror, runs the test suite, and builds a consumer project both ways (find_package and
# add_subdirectory). With --sanitize it does the same in build-asan/ under AddressSanitizer + UBSan; with
# --tsan it builds and runs the concurrency tests under ThreadSanitizer in build-tsan/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

build=build
flags=(-DCMAKE_BUILD_TYPE=Release -DRWKV_BUILD_BENCHMARKS=ON)
jobs=$(nproc)
if [ "${1:-}" = "--sanitize" ]; then
  build=build-asan
  flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DRWKV_SANITIZE=address,undefined -DRWKV_BUILD_BENCHMARKS=OFF -DRWKV_NATIVE=OFF)
elif [ "${1:-}" = "--tsan" ]; then
  cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRWKV_SANITIZE=thread -DRWKV_BUILD_BENCHMARKS=OFF -DRWKV_NATIVE=OFF
  cmake --build build-tsan -j "$jobs" --target thread_safety_test batch_test
  (cd build-tsan && ctest --output-on-failure -R "^(thread_safety_test|batch_test)$")
  exit 0
fi

cmake -S . -B "$build" -G Ninja "${flags[@]}"
cmake --build "$build" -j "$jobs"
(cd "$build" && ctest --output-on-failure -j "$jobs")

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
