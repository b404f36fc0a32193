#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for SECONDS (default 45) on its seed
# corpus: fuzz/corpus/<target>/ plus the matching fixtures of tests/data. A longer run:
#   scripts/fuzz.sh 3600          # an hour per target; new inputs are kept in build-fuzz/corpus/<target>
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-45}
RWKV_WITH_FUZZ=1 scripts/install-deps.sh
cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DRWKV_BUILD_FUZZERS=ON -DRWKV_BUILD_ANY_MODEL=OFF -DRWKV_BUILD_TESTS=OFF -DRWKV_BUILD_TOOLS=OFF -DRWKV_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-fuzz -j "$(nproc)"

seed() {  # target, fixture files...
  local dir=build-fuzz/corpus/$1
  mkdir -p "$dir"
  cp -n fuzz/corpus/"${1%_fuzz}"/* "$dir"/ 2>/dev/null || true  # fuzz/corpus/<target without _fuzz>/
  shift
  for f in "$@"; do cp -n "$f" "$dir"/; done
}
seed safetensors_fuzz tests/data/tiny-7v0.model.safetensors
seed pth_fuzz tests/data/v7-dev.model.bf16.pth
seed rwkvcpp_fuzz tests/data/tiny-4v0.rwkvcpp.bin
seed vocab_fuzz
seed state_fuzz

# One fuzzer per core (each is single-threaded).
fuzz_one() {
  local t=$1
  echo "fuzzing $t for ${seconds}s"
  if ! build-fuzz/fuzz/$t -max_total_time="$seconds" -rss_limit_mb=4096 -max_len=4194304 -print_final_stats=1 \
    build-fuzz/corpus/$t >build-fuzz/$t.log 2>&1; then
    tail -60 build-fuzz/$t.log
    echo "fuzzing: $t found a failure (the reproducer is in the working directory: crash-*/leak-*/timeout-*)"
    return 1
  fi
  echo "$t: $(grep -E "^stat::number_of_executed_units" build-fuzz/$t.log || true)"
}
export -f fuzz_one
export seconds
printf '%s\n' safetensors_fuzz pth_fuzz rwkvcpp_fuzz vocab_fuzz state_fuzz | xargs -P "$(nproc)" -I{} bash -c 'fuzz_one {}'
echo "fuzzing: all targets ran clean"
