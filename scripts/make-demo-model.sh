#!/usr/bin/env bash
# Rebuilds the bundled demo model, data/models/rwkv7-kjv-4x192.q8.safetensors: a byte-level RWKV-7 (4 x 192)
# trained by rwkv-cli on the King James Bible (public domain; Debian's bible-kjv-text), then quantized to q8.
# About 15 minutes on 2 cores. Usage: scripts/make-demo-model.sh [RWKV_CLI] [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
cli=${1:-build/tools/rwkv-cli}
work=${2:-/tmp/rwkv-demo-model}
mkdir -p "$work"
command -v bible >/dev/null || apt-get install -y bible-kjv
# One chapter per paragraph, verses joined, without book names and verse numbers.
bible -m 8192 gen1:1-rev22:21 | python3 -c '
import re, sys
paras, cur, verse = [], [], None
for line in sys.stdin.read().split("\n"):
    if not line.strip():
        continue
    m = re.match(r"^\s+(\d+) (.*)$", line)
    if m:
        if verse: cur.append(verse)
        verse = m.group(2).strip()
    elif re.match(r"^[0-9]?\s?[A-Z][A-Za-z ]+ \d+$", line):
        if verse: cur.append(verse); verse = None
        if cur: paras.append(" ".join(cur)); cur = []
    else:
        verse = (verse + " " + line.strip()) if verse else line.strip()
if verse: cur.append(verse)
if cur: paras.append(" ".join(cur))
sys.stdout.write("\n\n".join(paras) + "\n")
' > "$work/kjv.txt"
"$cli" train --data "$work/kjv.txt" --out "$work/kjv.safetensors" --layers 4 --embd 192 --head-size 64 --ctx 256 \
  --batch 4 --steps 2500 --lr 2e-3 --lr-final 1e-4 --warmup 50 --threads 2 --eval-every 250 --save-every 250 \
  --holdout 0.01
"$cli" quantize "$work/kjv.safetensors" --to q8 --out data/models/rwkv7-kjv-4x192.q8.safetensors
