#!/usr/bin/env bash
# One command from a fresh clone to generated text: installs what is missing, builds rwkv-cli (in build-demo/, so it
# never changes what scripts/test.sh builds), and generates with the tiny RWKV-7 model bundled in tests/data (834K
# parameters, byte-level: expect English-ish babble).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build-demo -G Ninja -DCMAKE_BUILD_TYPE=Release -DRWKV_BUILD_TESTS=OFF -DRWKV_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-demo --target rwkv-cli
build-demo/tools/rwkv-cli generate --prompt "${1:-The }" --max-tokens 200 --temperature 0.6 --top-p 0.6 --seed 1
