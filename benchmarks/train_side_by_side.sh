#!/usr/bin/env bash
# Training throughput, C++ next to PyTorch, one right after the other: our trainer
# (build/benchmarks/train_bench --benchmark_filter=train_step) and the official RWKV-7 PyTorch classes
# (benchmarks/train_pytorch.py), same shape (RWKV-7 6 x 256, vocab 256, context 512, batch 1, fp32), then both
# tokens/s and their ratio.
#   RWKV_LM=/path/to/RWKV-LM [THREADS=2] benchmarks/train_side_by_side.sh
# RWKV_LM: a checkout of RWKV-LM (or the file RWKV-v7/rwkv_v7_demo.py itself). Optional: THREADS (default 2:
# torch.set_num_threads and OMP_NUM_THREADS for both), ITERS (PyTorch timed iterations, default 5), PYTHON (an
# interpreter with torch; default the first of python3, /usr/bin/python3 that has it), TRAIN_BENCH (default
# build/benchmarks/train_bench), WKV (autograd | manual, train_pytorch.py --wkv). Both models have the official
# LoRA ranks (Python's round: gate rank 64 at C = 256), 5,371,392 parameters.
# Notes: train_bench registers train_step per thread count (train_step/threads:N, N = 1 and 2); the run matching
# THREADS is taken (a train_bench from before that, with one single-threaded train_step, is taken as is). With Debian's
# python3-torch the PyTorch side's GEMMs use the system libblas.so.3 (reference BLAS unless libopenblas0-pthread is
# installed); train_pytorch.py prints which and warns, and the summary line repeats it.
set -euo pipefail

die() { echo "train_side_by_side.sh: $*" >&2; exit 1; }

cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -n "${RWKV_LM:-}" ] || die "set RWKV_LM to a checkout of https://github.com/BlinkDL/RWKV-LM (or to its RWKV-v7/rwkv_v7_demo.py)"
if [ -f "$RWKV_LM" ]; then
  demo=$RWKV_LM
elif [ -f "$RWKV_LM/RWKV-v7/rwkv_v7_demo.py" ]; then
  demo=$RWKV_LM/RWKV-v7/rwkv_v7_demo.py
else
  die "RWKV_LM=$RWKV_LM: no RWKV-v7/rwkv_v7_demo.py there"
fi
threads=${THREADS:-2}
iters=${ITERS:-5}
wkv=${WKV:-autograd}
bench=${TRAIN_BENCH:-build/benchmarks/train_bench}
[ -x "$bench" ] || die "$bench not found: build it first (cmake --build build --target train_bench)"

python=${PYTHON:-}
if [ -z "$python" ]; then
  for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import torch' >/dev/null 2>&1; then python=$p; break; fi
  done
fi
[ -n "$python" ] || die "no python3 with torch found (apt-get install python3-torch, or set PYTHON)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=$threads

filter="^(train_step|gemm_rate)(/threads:$threads)?/"
echo "== C++: $bench --benchmark_filter='$filter'"
"$bench" --benchmark_filter="$filter" --benchmark_out="$tmp/cpp.json" --benchmark_out_format=json

echo "== PyTorch: $python benchmarks/train_pytorch.py --threads $threads --iters $iters --wkv $wkv"
"$python" benchmarks/train_pytorch.py --rwkv-lm "$demo" --threads "$threads" --iters "$iters" --wkv "$wkv" \
  | tee "$tmp/py.txt"

"$python" - "$tmp/cpp.json" "$tmp/py.txt" "$threads" <<'EOF'
import json, sys
all_runs = json.load(open(sys.argv[1])).get("benchmarks", [])
runs = [b for b in all_runs if b["name"].startswith("train_step")]
gemm = [b for b in all_runs if b["name"].startswith("gemm_rate") and "FLOP/s" in b]
cpp = [b for b in runs if f"/threads:{sys.argv[3]}/" in b["name"]] or [b for b in runs if "/threads:" not in b["name"]]
if not cpp or "tokens/s" not in cpp[0]:
    sys.exit(f"train_side_by_side.sh: no train_step run with tokens/s for THREADS={sys.argv[3]} in train_bench's "
             f"output (runs: {[b['name'] for b in runs]})")
py = [l for l in open(sys.argv[2]) if l.startswith('{"impl"')]
if not py:
    sys.exit("train_side_by_side.sh: no JSON line in train_pytorch.py's output")
c, p = float(cpp[0]["tokens/s"]), json.loads(py[-1])
t = p["tokens_per_s_median"]
print(f"== threads {sys.argv[3]}: C++ {c:.1f} tokens/s [{cpp[0]['name']}] ({int(cpp[0].get('params', 0)):,} params), "
      f"PyTorch {t:.1f} tokens/s ({p['params_cpp_layout']:,} params, torch {p['torch']}, BLAS {p.get('blas')}), "
      f"C++/PyTorch {c / t:.2f}x")
out = {"threads": int(sys.argv[3]), "cpp_tokens_per_s": round(c, 2), "pytorch_tokens_per_s": t,
       "ratio_cpp_over_pytorch": round(c / t, 3)}
if gemm and cpp[0].get("params"):
    # 6 x parameters FLOP per token (forward + backward products) at the GEMM rate of the same run.
    limit = float(gemm[0]["FLOP/s"]) / (6 * float(cpp[0]["params"]))
    print(f"== GEMM {float(gemm[0]['FLOP/s']) / 1e9:.1f} GFLOP/s [{gemm[0]['name']}]: limit {limit:.0f} tokens/s, "
          f"C++ at {100 * c / limit:.1f}% of it")
    out.update({"gemm_flops": float(gemm[0]["FLOP/s"]), "gemm_limit_tokens_per_s": round(limit, 1),
                "fraction_of_gemm_limit": round(c / limit, 4)})
print(json.dumps(out))
EOF
