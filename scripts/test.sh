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
  cmake --build build-tsan -j "$jobs" --target thread_safety_test batch_test serve_engine_test
  (cd build-tsan && ctest --no-tests=error --output-on-failure -R "^(thread_safety_test|batch_test|serve_engine_test)$")
  exit 0
fi

cmake -S . -B "$build" -G Ninja "${flags[@]}"
cmake --build "$build" -j "$jobs"
(cd "$build" && ctest --no-tests=error --output-on-failure -j "$jobs")

if [ "$build" = build ]; then
  # Consumer project (tests/consumer): from the installed package (find_package, RWKV_NATIVE ON) and from the source
  # tree (add_subdirectory). Neither compiles the any_model instantiations again: the package's rwkv::any_model is
  # linked, and from the source tree only the header-only program is built.
  rm -rf build/consumer-prefix build/consumer-moved build/consumer-a build/consumer-b
  cmake --install build --prefix build/consumer-prefix >/dev/null
  cmake -S tests/consumer -B build/consumer-a -G Ninja -DCMAKE_PREFIX_PATH="$PWD/build/consumer-prefix" -DRWKV_NATIVE=ON >/dev/null
  cmake --build build/consumer-a -j "$jobs"
  build/consumer-a/consumer tests/data/tiny-7v0.model.safetensors
  env -u RWKV_WORLD_VOCAB build/consumer-a/any_model_consumer build/consumer-prefix/share/rwkvpp/rwkv7-kjv-4x192.q8.safetensors \
    build/consumer-a/state.safetensors
  cmake -S tests/consumer -B build/consumer-b -G Ninja -DRWKVPP_SOURCE_DIR="$PWD" >/dev/null
  cmake --build build/consumer-b -j "$jobs"
  build/consumer-b/consumer tests/data/tiny-7v0.model.safetensors
  # The installed rwkv-cli takes its demo model and the World vocabulary from share/rwkvpp/ of its own prefix,
  # wherever that is: in a moved copy it runs, and with the copy's files spoiled its errors name them.
  cp -r build/consumer-prefix build/consumer-moved
  cli=(env -u RWKV_WORLD_VOCAB build/consumer-moved/bin/rwkv-cli)
  "${cli[@]}" generate --max-tokens 5 >/dev/null
  printf 'Hello' >build/consumer-moved/hello.txt
  [ "$("${cli[@]}" tokenize --file build/consumer-moved/hello.txt)" = 33155 ]
  data=build/consumer-moved/share/rwkvpp
  echo "not a model" >"$data/rwkv7-kjv-4x192.q8.safetensors"
  echo "1 'a' 2" >"$data/rwkv_vocab_v20230424.txt"
  out=$("${cli[@]}" generate --max-tokens 5 2>&1 || true)
  grep -q "consumer-moved/share/rwkvpp/rwkv7-kjv" <<<"$out" || { echo "rwkv-cli did not take its prefix's model: $out"; exit 1; }
  out=$("${cli[@]}" tokenize --file build/consumer-moved/hello.txt 2>&1 || true)
  grep -q "consumer-moved/share/rwkvpp/rwkv_vocab" <<<"$out" || { echo "rwkv-cli did not take its prefix's vocabulary: $out"; exit 1; }
  echo "consumer project: find_package (rwkv::rwkv, rwkv::any_model), add_subdirectory and the installed rwkv-cli OK"
fi
