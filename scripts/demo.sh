#!/usr/bin/env bash
# One command from a fresh clone to generated text: installs what is missing, builds rwkv-cli (in build-demo/, so it
# never changes what scripts/test.sh builds), and generates with the RWKV-7 model bundled in data/models (4 x 192,
# byte-level, trained by rwkvpp on the King James Bible: it writes King-James-flavoured English).
# Usage: scripts/demo.sh [PROMPT]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build-demo -G Ninja -DCMAKE_BUILD_TYPE=Release -DRWKV_BUILD_TESTS=OFF -DRWKV_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-demo --target rwkv-cli
build-demo/tools/rwkv-cli generate --prompt "${1:-And it came to pass}" --max-tokens 300 --seed 1
