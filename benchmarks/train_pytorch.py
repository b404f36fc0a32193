#!/usr/bin/env python3
"""Training throughput of the OFFICIAL RWKV-7 PyTorch model classes on the CPU, for comparison with our C++
trainer (benchmarks/train_bench.cpp, `train_step`).

What it measures: RWKV-7, 6 layers x 256, head size 64, vocab 256, context 512, batch 1, float32, eager mode.
One iteration = forward over 512 random tokens, cross-entropy against random targets, backward, gradient
clipping at 1.0 (as train_bench does; --clip 0 turns it off), torch.optim.AdamW step (lr 1e-4, betas
(0.9, 0.99), eps 1e-18, weight decay 0). One warm-up iteration, then --iters timed ones; prints the median
tokens/s and one JSON line.

Where the model comes from: the classes RWKV, Block, RWKV_Tmix_x070 and RWKV_CMix_x070 are read at run time
from RWKV-LM's RWKV-v7/rwkv_v7_demo.py (nothing of it is copied here). The file is parsed with `ast`; only the
class definitions the model needs are executed, never its top-level code (tokenizer, CUDA extension build,
checkpoint loading, demo). They run in a namespace that this script fills:
  * RWKV7_OP, the WKV kernel entry the demo defines only inside `if USE_CUDA_KERNEL:` (there it wraps the
    forward-only CUDA autograd function WKV_7), is replaced by our own serial WKV-7 recurrence below;
  * MyModule / MyFunction (torch.jit.ScriptModule / script_method in the demo) become nn.Module / identity
    (eager mode), DTYPE = float32, HEAD_SIZE = 64;
  * the LoRA ranks (the demo hard-codes those of the 0.1B model, C = 768) follow the training code's formula
    max(32, round(k*sqrt(C)/32)*32), k = 2.5 (w, a), 1.7 (v), 5 (g) -> 32, 32, 32, 64 for C = 256;
  * the demo creates parameters with torch.empty (it always loads a checkpoint), so the weights are
    initialised here as RWKV-v7/train_temp/src/model.py does (constructor values + generate_init_weight).

BLAS matters: Debian's python3-torch is built with BLAS_INFO=generic and runs its matrix products on whatever
libblas.so.3 is installed, the reference (netlib) BLAS unless e.g. libopenblas0-pthread is (about 12x slower
GEMMs here). The script prints which library it got, warns on the reference one, and puts it in the JSON.

Run it (it needs torch; Debian's python3-torch lives in /usr/bin/python3):
    python3 benchmarks/train_pytorch.py --rwkv-lm /path/to/RWKV-LM --threads 2
    python3 benchmarks/train_pytorch.py --rwkv-lm /path/to/RWKV-LM --check   # validate our WKV first
--rwkv-lm takes a checkout of RWKV-LM or the file rwkv_v7_demo.py itself.
"""

import argparse
import ast
import builtins
import hashlib
import json
import math
import os
import statistics
import subprocess
import sys
import time
import types

import torch
import torch.nn as nn
import torch.nn.functional as F

DEMO_REL = os.path.join("RWKV-v7", "rwkv_v7_demo.py")
CPP_PARAMS = 5_469_696  # our C++ model of this shape (benchmarks/train_bench.cpp reports it as "params")


# ---------------------------------------------------------------------------------------------------------------
# Our WKV-7 recurrence. Per head, state S[value i][key j] (spec/v7.md (b), the demo's own non-CUDA path):
#   sa_t = S_{t-1} a_t,  S_t = S_{t-1} diag(w_t) + sa_t b_t^T + v_t k_t^T,  y_t = S_t r_t,
# with the decay w_t = exp(-exp(w_in)) from the log-log input the demo's RWKV7_OP takes. Two implementations:
# "autograd" lets PyTorch differentiate the loop; "manual" is an autograd.Function with the hand-written
# serial backward of spec/v7.md (f) (what the official training kernels compute, minus their checkpointing).
# ---------------------------------------------------------------------------------------------------------------

def wkv7_autograd(r, w, k, v, a, b, head_size):
    B, T, C = r.shape
    H, N = C // head_size, head_size
    w = torch.exp(-torch.exp(w))
    rs, ws, ks, vs, as_, bs = [x.reshape(B, T, H, N).unbind(1) for x in (r, w, k, v, a, b)]
    S = r.new_zeros(B, H, N, N)
    ys = []
    for t in range(T):
        sa = S @ as_[t].unsqueeze(-1)                                   # (B,H,N,1)
        S = S * ws[t].unsqueeze(-2) + sa @ bs[t].unsqueeze(-2) + vs[t].unsqueeze(-1) @ ks[t].unsqueeze(-2)
        ys.append((S @ rs[t].unsqueeze(-1)).squeeze(-1))
    return torch.stack(ys, dim=1).reshape(B, T, C)


class _WKV7Manual(torch.autograd.Function):
    """Inputs (B,T,H,N) contiguous, w already the decay in (0,1). Saves every S_t and sa_t."""

    @staticmethod
    def forward(ctx, r, w, k, v, a, b):
        B, T, H, N = r.shape
        Ss = r.new_empty(T, B, H, N, N)
        sas = r.new_empty(T, B, H, N)
        y = r.new_empty(B, T, H, N)
        S = r.new_zeros(B, H, N, N)
        for t in range(T):
            sa = S @ a[:, t].unsqueeze(-1)
            St = Ss[t]
            torch.mul(S, w[:, t].unsqueeze(-2), out=St)
            St.addcmul_(sa, b[:, t].unsqueeze(-2))
            St.addcmul_(v[:, t].unsqueeze(-1), k[:, t].unsqueeze(-2))
            y[:, t] = (St @ r[:, t].unsqueeze(-1)).squeeze(-1)
            sas[t] = sa.squeeze(-1)
            S = St
        ctx.save_for_backward(r, w, k, v, a, b, Ss, sas)
        return y

    @staticmethod
    def backward(ctx, gy):
        r, w, k, v, a, b, Ss, sas = ctx.saved_tensors
        B, T, H, N = r.shape
        gy = gy.contiguous()
        dr, dw, dk, dv, da, db = [torch.empty_like(x) for x in (r, w, k, v, a, b)]
        dS = r.new_zeros(B, H, N, N)
        zero = r.new_zeros(B, H, N, N)
        for t in range(T - 1, -1, -1):
            g = gy[:, t]
            St, Sp = Ss[t], (Ss[t - 1] if t > 0 else zero)
            dS.addcmul_(g.unsqueeze(-1), r[:, t].unsqueeze(-2))
            dr[:, t] = (St.transpose(-1, -2) @ g.unsqueeze(-1)).squeeze(-1)
            dv[:, t] = (dS @ k[:, t].unsqueeze(-1)).squeeze(-1)
            kb = dS.transpose(-1, -2) @ torch.stack((v[:, t], sas[t]), dim=-1)   # dS^T [v, sa]
            dk[:, t] = kb[..., 0]
            db[:, t] = kb[..., 1]
            dw[:, t] = (dS * Sp).sum(-2)
            q = dS @ b[:, t].unsqueeze(-1)                                       # (B,H,N,1)
            da[:, t] = (Sp.transpose(-1, -2) @ q).squeeze(-1)
            dS.mul_(w[:, t].unsqueeze(-2)).addcmul_(q, a[:, t].unsqueeze(-2))
        return dr, dw, dk, dv, da, db


def wkv7_manual(r, w, k, v, a, b, head_size):
    B, T, C = r.shape
    H, N = C // head_size, head_size
    w = torch.exp(-torch.exp(w))
    r, w, k, v, a, b = [x.reshape(B, T, H, N).contiguous() for x in (r, w, k, v, a, b)]
    return _WKV7Manual.apply(r, w, k, v, a, b).reshape(B, T, C)


WKV_IMPLS = {"autograd": wkv7_autograd, "manual": wkv7_manual}


# ---------------------------------------------------------------------------------------------------------------
# Reading the official classes
# ---------------------------------------------------------------------------------------------------------------

def locate_demo(path):
    if os.path.isdir(path):
        for cand in (os.path.join(path, DEMO_REL), os.path.join(path, "rwkv_v7_demo.py")):
            if os.path.isfile(cand):
                return cand
        sys.exit(f"error: no {DEMO_REL} under {path!r} (pass a RWKV-LM checkout or the file itself)")
    if os.path.isfile(path):
        return path
    sys.exit(f"error: --rwkv-lm {path!r} is neither a directory nor a file")


def git_commit(demo_path):
    try:
        out = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(demo_path)), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _names(node):
    """Names a definition loads but does not bind itself (a rough free-variable set)."""
    loads, binds = set(), set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            (loads if isinstance(n.ctx, ast.Load) else binds).add(n.id)
        elif isinstance(n, ast.arg):
            binds.add(n.arg)
        elif isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n is not node:
            binds.add(n.name)
    return loads - binds


def load_official(demo_path, wkv_fn, lora, head_size):
    """Executes the model's class definitions from the demo file; returns (namespace, info)."""
    src = open(demo_path, encoding="utf-8").read()
    tree = ast.parse(src, filename=demo_path)
    top_classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    top_funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    # functions defined only under a top-level `if` (the CUDA / non-CUDA kernel switch)
    cond_funcs = {}
    for n in tree.body:
        if isinstance(n, ast.If):
            for branch, label in ((n.body, "if"), (n.orelse, "else")):
                for m in branch:
                    if isinstance(m, ast.FunctionDef):
                        cond_funcs.setdefault(m.name, {})[label] = m
    # hard-coded constants of the file, for the report only
    consts = {}
    for n in tree.body:
        if isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name):
            try:
                consts[n.targets[0].id] = ast.literal_eval(n.value)
            except ValueError:
                pass

    if "RWKV" not in top_classes:
        sys.exit(f"error: {demo_path} defines no top-level class RWKV")
    # the classes (and top-level helper functions) RWKV needs, transitively
    wanted, todo = [], ["RWKV"]
    while todo:
        name = todo.pop()
        if name in wanted:
            continue
        wanted.append(name)
        node = top_classes.get(name) or top_funcs[name]
        todo += [m for m in _names(node) if m in top_classes or m in top_funcs]
    defs = [n for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and n.name in wanted]

    free = set().union(*(_names(d) for d in defs)) - set(wanted) - set(dir(builtins))
    kernels = sorted(free & set(cond_funcs))
    if len(kernels) != 1:
        sys.exit(f"error: expected one conditionally defined WKV kernel among {sorted(free)}, found {kernels}")
    kernel = kernels[0]

    ns = {
        "__name__": "rwkv_v7_demo_classes", "__builtins__": builtins,
        "torch": torch, "nn": nn, "F": F, "math": math, "types": types, "os": os,
        "MyModule": nn.Module, "MyFunction": lambda f: f, "MyStatic": lambda f: f,
        "DTYPE": torch.float32, "HEAD_SIZE": head_size,
        "D_DECAY_LORA": lora["w"], "D_AAA_LORA": lora["a"], "D_MV_LORA": lora["v"], "D_GATE_LORA": lora["g"],
        kernel: lambda r, w, k, v, a, b: wkv_fn(r, w, k, v, a, b, head_size),
    }
    missing = sorted(free - set(ns))
    if missing:
        sys.exit(f"error: the demo's classes use names this script does not provide: {missing}")
    exec(compile(ast.Module(body=defs, type_ignores=[]), demo_path, "exec"), ns)

    info = {"kernel": kernel, "classes": [d.name for d in defs],
            "demo_lora": {k: consts.get(k) for k in ("D_DECAY_LORA", "D_AAA_LORA", "D_MV_LORA", "D_GATE_LORA")},
            "demo_sha256": hashlib.sha256(src.encode()).hexdigest(),
            "pure_torch_kernel_src": cond_funcs[kernel].get("else"), "consts": consts}
    return ns, info


def blas_library():
    """The shared library that provides sgemm in this process (Linux only; None where unknown)."""
    torch.ones(64, 64) @ torch.ones(64, 64)  # loads the BLAS (without touching the RNG)
    try:
        libs = {line.split()[-1] for line in open("/proc/self/maps") if ".so" in line}
    except OSError:
        return None
    hits = sorted(l for l in libs if any(k in os.path.basename(l) for k in ("blas", "mkl_rt", "mkl_core", "blis")))
    return ", ".join(hits) or None


def lora_ranks(C, rounding):
    rnd = round if rounding == "python" else (lambda x: math.floor(x + 0.5))  # half-to-even vs half-up
    r = lambda k: max(32, int(rnd(k * C ** 0.5 / 32) * 32))
    return {"w": r(2.5), "a": r(2.5), "v": r(1.7), "g": r(5.0)}


# ---------------------------------------------------------------------------------------------------------------
# Initialisation as RWKV-v7/train_temp/src/model.py (RWKV_Tmix_x070 / RWKV_CMix_x070 constructors, then
# RWKV.generate_init_weight for the matrices).
# ---------------------------------------------------------------------------------------------------------------

@torch.no_grad()
def init_official(model, n_layer, C, N, vocab):
    ortho = lambda p, gain: nn.init.orthogonal_(p, gain=gain) if gain else nn.init.zeros_(p)
    idx = torch.arange(C, dtype=torch.float32)
    ddd = (idx / C).view(1, 1, C)
    linear = idx / (C - 1) - 0.5
    zz = ((idx % N) - (N - 1) / 2) / ((N - 1) / 2)
    zigzag = zz * zz.abs()
    for i, blk in enumerate(model.blocks):
        r01, r1 = i / (n_layer - 1), 1.0 - i / n_layer
        att, ffn = blk.att, blk.ffn
        for name, e in (("x_r", 0.2), ("x_w", 0.9), ("x_k", 0.7), ("x_v", 0.7), ("x_a", 0.9), ("x_g", 0.2)):
            getattr(att, name).copy_(1.0 - torch.pow(ddd, e * r1))
        www = -6 + 6 * (idx / (C - 1)) ** (1 + r01 ** 0.3)
        att.w0.copy_((www + 0.5 + zigzag * 2.5).view(1, 1, C))
        att.a0.copy_((-0.19 + zigzag * 0.3 + linear * 0.4).view(1, 1, C))
        att.v0.copy_((0.73 - linear * 0.4).view(1, 1, C))
        for first, second in (("w1", "w2"), ("a1", "a2"), ("v1", "v2"), ("g1", "g2")):
            getattr(att, first).zero_()
            p = getattr(att, second)
            ortho(p, 0.1 * (math.sqrt(p.shape[0] / p.shape[1]) if p.shape[0] > p.shape[1] else 1.0))
        att.k_k.copy_((0.71 - linear * 0.1).view(1, 1, C))
        att.k_a.fill_(1.02)
        att.r_k.fill_(-0.04)
        ortho(att.receptance.weight, 1.0)
        ortho(att.key.weight, 0.1)
        ortho(att.value.weight, 1.0)
        ortho(att.output.weight, 0.0)
        att.ln_x.weight.fill_(((1 + i) / n_layer) ** 0.7)
        att.ln_x.bias.zero_()
        ffn.x_k.copy_(1.0 - torch.pow(ddd, r1 ** 4))
        ortho(ffn.key.weight, 1.0)
        ortho(ffn.value.weight, 0.0)
    nn.init.uniform_(model.emb.weight, a=-1e-4, b=1e-4)
    ortho(model.head.weight, 0.5 * math.sqrt(vocab / C) if vocab > C else 0.5)
    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        sys.exit(f"error: parameters left uninitialised: {bad}")


# ---------------------------------------------------------------------------------------------------------------

def check_wkv(info, head_size):
    """Our two WKV implementations against each other (values and gradients, float64) and against the demo's
    own pure-PyTorch RWKV7_OP (its `else` branch, forward only, float32 inside)."""
    torch.manual_seed(0)
    B, T, C = 2, 24, 2 * head_size
    N = head_size
    gen = lambda: torch.randn(B, T, C, dtype=torch.float64)
    kk = F.normalize(gen().view(B, T, C // N, N), dim=-1).view(B, T, C)
    alpha = torch.sigmoid(gen())
    inputs = [gen(), -F.softplus(-gen()) - 0.5, gen() * 0.3, gen(), -kk, kk * alpha]
    outs, grads = {}, {}
    for name, fn in WKV_IMPLS.items():
        xs = [x.clone().requires_grad_() for x in inputs]
        y = fn(*xs, head_size)
        y.backward(torch.cos(torch.arange(y.numel(), dtype=torch.float64)).view_as(y))
        outs[name], grads[name] = y.detach(), [x.grad for x in xs]
    ok = True
    err = (outs["autograd"] - outs["manual"]).abs().max().item()
    gerr = max((g1 - g2).abs().max().item() for g1, g2 in zip(grads["autograd"], grads["manual"]))
    print(f"check: manual vs autograd WKV, float64: max |dy| {err:.2e}, max |dgrad| {gerr:.2e}")
    ok &= err < 1e-10 and gerr < 1e-10
    fdef = info["pure_torch_kernel_src"]
    if fdef is not None:
        ns = {"torch": torch, "HEAD_SIZE": head_size, "DTYPE": torch.float32}
        exec(compile(ast.Module(body=[fdef], type_ignores=[]), "<demo pure-torch kernel>", "exec"), ns)
        ref = ns[info["kernel"]](*[x.float() for x in inputs]).double()
        derr = (ref - outs["autograd"]).abs().max().item() / outs["autograd"].abs().max().item()
        print(f"check: ours vs the demo's own non-CUDA {info['kernel']} (float32): max rel |dy| {derr:.2e}")
        ok &= derr < 1e-5
    else:
        print("check: the demo file has no non-CUDA kernel to compare with")
    print("check:", "OK" if ok else "FAILED")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rwkv-lm", required=True, help="RWKV-LM checkout, or the file RWKV-v7/rwkv_v7_demo.py")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5, help="timed iterations (after 1 warm-up)")
    ap.add_argument("--wkv", choices=sorted(WKV_IMPLS), default="autograd",
                    help="our WKV recurrence: autograd through the serial loop (default) or hand-written backward")
    ap.add_argument("--lora-rounding", choices=("python", "half-up"), default="python",
                    help="rounding in the LoRA-rank formula: python = the official code's round() (half to even: "
                         "gate rank 64 at C=256); half-up = round half up (gate rank 96)")
    ap.add_argument("--clip", type=float, default=1.0, help="gradient-norm clip as train_bench (0: none)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--check", action="store_true", help="validate the WKV replacement, then benchmark")
    args = ap.parse_args()

    n_layer, C, N, vocab, ctx, batch = 6, 256, 64, 256, 512, 1
    torch.set_num_threads(args.threads)

    demo = locate_demo(args.rwkv_lm)
    lora = lora_ranks(C, args.lora_rounding)
    ns, info = load_official(demo, WKV_IMPLS[args.wkv], lora, N)
    commit = git_commit(demo)
    print(f"official classes {', '.join(info['classes'])} from {demo}"
          f" (sha256 {info['demo_sha256'][:16]}, commit {commit or 'unknown'})")
    print(f"replaced kernel {info['kernel']} by our '{args.wkv}' serial WKV-7; demo's hard-coded LoRA ranks "
          f"{info['demo_lora']} (0.1B), used w/a/v/g = {lora['w']}/{lora['a']}/{lora['v']}/{lora['g']} "
          f"({args.lora_rounding} rounding)")
    blas = blas_library()
    print(f"torch {torch.__version__}, BLAS: {blas or 'unknown'}")
    real = [os.path.realpath(l) for l in (blas or "").split(", ") if l]
    if any("/blas/libblas.so" in l for l in real) and not any(k in l for l in real for k in ("openblas", "mkl", "blis")):
        print("warning: torch runs its matrix products on the reference (netlib) BLAS, several times slower than "
              "an optimised one; with Debian's torch: apt-get install libopenblas0-pthread")
    if args.check and not check_wkv(info, N):
        sys.exit(1)

    torch.manual_seed(args.seed)
    cfg = types.SimpleNamespace(n_layer=n_layer, n_embd=C, vocab_size=vocab, head_size_a=N, ctx_len=ctx,
                                dim_att=C, dim_ffn=4 * C)
    model = ns["RWKV"](cfg)
    init_official(model, n_layer, C, N, vocab)
    model.train()

    params = sum(p.numel() for p in model.parameters())
    extra_ln0 = sum(p.numel() for i, b in enumerate(model.blocks) if i > 0 for p in b.ln0.parameters())
    cpp_layout = params - extra_ln0
    other = lora_ranks(C, "half-up" if args.lora_rounding == "python" else "python")
    other_count = cpp_layout + 2 * C * n_layer * sum(other[k] - lora[k] for k in lora)
    print(f"params: {params:,} (the demo's Block makes ln0 in every layer; with ln0 in layer 0 only, as the C++ "
          f"model and the training code: {cpp_layout:,}; C++ model: {CPP_PARAMS:,})")
    print(f"params with the other rounding (w/a/v/g = {other['w']}/{other['a']}/{other['v']}/{other['g']}): "
          f"{other_count:,} (ln0 in layer 0 only)")
    if cpp_layout != CPP_PARAMS:
        print(f"note: {cpp_layout - CPP_PARAMS:+,} parameters vs the C++ model "
              f"({100.0 * (cpp_layout - CPP_PARAMS) / CPP_PARAMS:+.2f}%)")

    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.99), eps=1e-18, weight_decay=0.0)
    g = torch.Generator().manual_seed(args.seed)
    idx = torch.randint(0, vocab, (batch, ctx), generator=g)
    tgt = torch.randint(0, vocab, (batch, ctx), generator=g)

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(idx)
        loss = F.cross_entropy(logits.view(-1, vocab), tgt.view(-1))
        loss.backward()
        if args.clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        return loss.item()

    t0 = time.perf_counter()
    loss = step()
    print(f"warm-up: {time.perf_counter() - t0:.2f} s, loss {loss:.4f} (ln 256 = {math.log(vocab):.4f})")
    if not math.isfinite(loss):
        sys.exit("error: non-finite loss")
    times = []
    for i in range(args.iters):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
        print(f"iter {i + 1}/{args.iters}: {times[-1]:.2f} s, {batch * ctx / times[-1]:.1f} tokens/s, "
              f"loss {loss:.4f}")
    tps = batch * ctx / statistics.median(times)
    print(f"median: {tps:.1f} tokens/s ({args.threads} threads, wkv {args.wkv})")
    print(json.dumps({"impl": "pytorch-official-v7", "threads": args.threads,
                      "tokens_per_s_median": round(tps, 2), "params": params, "params_cpp_layout": cpp_layout,
                      "torch": torch.__version__, "blas": blas, "wkv": args.wkv, "lora": lora, "iters": args.iters,
                      "kernel_replaced": info["kernel"], "rwkv_lm_commit": commit,
                      "demo_sha256": info["demo_sha256"]}))


if __name__ == "__main__":
    main()
