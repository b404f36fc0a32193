#!/usr/bin/env bash
# Fails if any of our C++ sources differs from clang-format's output (.clang-format at the root).
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files '*.hpp' '*.cpp' '*.cu' '*.cuh')
clang-format --dry-run --Werror $files
echo "format: $(echo "$files" | wc -l) files clean"
