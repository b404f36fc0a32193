#!/usr/bin/env bash
# The README's performance table: random RWKV-7 checkpoints of the 0.1B (12 x 768) and 0.4B (24 x 1024) shapes,
# vocab 65536, written once into DIR (about 5 GB), then `rwkv-cli bench` per shape x precision x threads, one JSON
# object a line on stdout.
#   benchmarks/readme_table.sh [DIR] [CLI]        defaults: /tmp/rwkv-bench, build/tools/rwkv-cli
set -euo pipefail
dir=${1:-/tmp/rwkv-bench}
cli=${2:-build/tools/rwkv-cli}
mkdir -p "$dir"

make_models() {  # shape name, layers, width, precisions...
  local name=$1 layers=$2 embd=$3
  shift 3
  local f32="$dir/v7-$name.f32.safetensors"
  [ -f "$f32" ] || "$cli" make-random --version 7 --layers "$layers" --embd "$embd" --vocab 65536 --seed 1 --out "$f32" >&2
  for p in "$@"; do
    local f="$dir/v7-$name.$p.safetensors"
    [ -f "$f" ] && continue
    case $p in
      bf16 | f16) "$cli" convert "$f32" --dtype "$p" --out "$f" >&2 ;;
      q8 | q4) "$cli" quantize "$f32" --to "$p" --out "$f" >&2 ;;
    esac
  done
}

bench() {  # shape name, precision, threads, prompt length
  "$cli" bench "$dir/v7-$1.$2.safetensors" --precision "$2" --threads "$3" --prompt "$4" --decode 64 --runs 5
}

make_models 0.1b bf16 f16 q8 q4
make_models 0.4b bf16 q8
for t in 1 2; do
  for p in f32 bf16 f16 q8 q4; do bench 0.1b $p $t 512; done
  for p in f32 bf16 q8; do bench 0.4b $p $t 512; done
done
for p in f32 bf16 q8; do
  bench 0.1b $p 2 2048
  bench 0.4b $p 2 2048
done
