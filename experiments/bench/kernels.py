"""Micro-benchmark of the gated linear as the harness runs it (``kernels.dispatch``) vs dense F.linear (decode shapes).

    python -m experiments.bench.kernels --out results/kernels [--dtype fp16] [--quick] [--sweep]

One table: for each shape (out x in, PyTorch layout), batch M and target per-row sparsity s:
dense F.linear time, our time (``kernels.dispatch.gated_linear_auto``, the path the harness's gated modules take: the
CUDA C++ kernel for one row where it builds, else the Triton kernel; mask + F.linear for more rows; the ``path``
column names it, ``triton_us`` times the Triton kernel beside it), speed-up, the bandwidth limit 1/(1-s) (and 1/union for
M > 1), the fraction of the limit reached, effective GB/s over the bytes of the weight rows
actually read (union of the rows' masks) vs the measured device-to-device copy bandwidth,
and the relative error vs float64 next to dense F.linear's own error on the same problem.
A second table times the selection (per-row top-k threshold: Triton bisection vs torch.topk)
and the gate variants (scalar / 0-d tensor / per-channel threshold / WINA scale).

Timing: CUDA events around CUDA-graph replays; each graph holds >= 16 calls rotating through
weight copies (and fresh activations) whose selected bytes exceed 4x L2; median of many reps.
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

import kernels
from experiments.bench.peer_teal import load as load_teal
from experiments.harness.tables import markdown_table
from kernels import dispatch
from kernels.dispatch import gated_linear_auto
from kernels.gated_gemv import GatedConfig, gated_linear, load_tuned, pick_config
from kernels.score import threshold_mask, topk_threshold_torch
from kernels.select import calibrate_threshold, topk_threshold

SHAPES = [(14336, 4096), (4096, 14336), (4096, 4096), (17920, 5120)]
SPARSITIES = [0.0, 0.25, 0.40, 0.50, 0.65, 0.80]
BATCHES = [1, 8, 64]


def graph_time_us(fns, reps: int = 50, calls_min: int = 16) -> float:
    """Median time per call (us) of ``fns`` (rotated) replayed from one CUDA graph."""
    n = max(calls_min, len(fns))
    seq = [fns[i % len(fns)] for i in range(n)]
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for f in seq[: len(fns)]:
            f()
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for f in seq:
            f()
    for _ in range(3):
        g.replay()
    torch.cuda.synchronize()
    ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
    for a, b in ev:
        a.record()
        g.replay()
        b.record()
    torch.cuda.synchronize()
    t = statistics.median(a.elapsed_time(b) for a, b in ev)
    del g
    return t * 1e3 / n


def copy_bandwidth_gbs(nbytes: int = 1 << 30) -> float:
    a = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    a.random_(0, 255)
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    torch.cuda.synchronize()
    ts = []
    for _ in range(20):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        b.copy_(a)
        e1.record()
        e1.synchronize()
        ts.append(e0.elapsed_time(e1))
    del a, b
    return 2 * nbytes / (statistics.median(ts) * 1e-3) / 1e9


def rel_err(y, ref):
    return ((y.double() - ref).norm() / ref.norm()).item()


class Shape:
    """Weight copies (both layouts) of one shape, enough to defeat L2."""

    def __init__(self, out_f, in_f, dtype, l2_bytes, min_frac=0.2, max_copies=64):
        self.N, self.K = out_f, in_f
        wbytes = out_f * in_f * torch.finfo(dtype).bits // 8
        self.n = int(min(max_copies, max(2, math.ceil(4 * l2_bytes / (wbytes * min_frac)))))
        g = torch.Generator(device="cuda").manual_seed(out_f + in_f)
        self.w = [(torch.randn(out_f, in_f, device="cuda", generator=g) / math.sqrt(in_f)).to(dtype)
                  for _ in range(self.n)]
        self.w_t = [w.t().contiguous() for w in self.w]
        self.wbytes = wbytes


def bench_inputs(sh: Shape, M: int, s: float, dtype):
    """The activations of a (shape, batch, sparsity) cell, one per weight copy (seeded: every benchmark of the cell
    sees the same), and the TEAL-style scalar threshold for the target per-row sparsity (each row independent)."""
    g = torch.Generator(device="cuda").manual_seed(M * 100 + int(s * 100))
    xs = [torch.randn(M, sh.K, device="cuda", generator=g).to(dtype) for _ in range(sh.n)]
    return xs, calibrate_threshold(torch.cat(xs[:4]), None, s) if s > 0 else 0.0


def bench_row(sh: Shape, M: int, s: float, dtype, copy_bw: float, reps: int, cfg=None, dense_us=None, teal=None):
    N, K, n = sh.N, sh.K, sh.n
    xs, t = bench_inputs(sh, M, s, dtype)
    thr = torch.tensor(t, device="cuda", dtype=torch.float32)  # tensor: kernel even at s = 0
    masks = [threshold_mask(x.float(), t) for x in xs]
    row_density = statistics.mean(m.float().mean().item() for m in masks)
    union = statistics.mean(m.any(0).float().mean().item() for m in masks)

    dense_fns = [lambda i=i: F.linear(xs[i], sh.w[i]) for i in range(n)]
    c = cfg or pick_config(M, N, K, torch.device("cuda"))
    if cfg is not None:  # a Triton launch config of the sweep
        def ours(i):
            return gated_linear(xs[i], sh.w_t[i], thr, config=c)
        path = "triton " + triton_cfg_name(c)
    else:  # what the harness's gated modules run: kernels.dispatch
        def ours(i):
            return gated_linear_auto(xs[i], sh.w[i], sh.w_t[i], thr)
        path = dispatched_path(xs[0], sh, c)
    t_dense = dense_us if dense_us is not None else graph_time_us(dense_fns, reps)
    t_kern = graph_time_us([lambda i=i: ours(i) for i in range(n)], reps)
    extra = {}
    if cfg is None and M == 1 and not path.startswith("triton"):  # the Triton kernel beside the dispatched path
        extra["triton_us"] = round(graph_time_us([lambda i=i: gated_linear(xs[i], sh.w_t[i], thr, config=c)
                                                  for i in range(n)], reps), 2)

    # accuracy on copy 0 (float64 reference of the same gated problem)
    xm = xs[0] * masks[0].to(dtype)
    ref = xm.double() @ sh.w_t[0].double()
    e_kern = rel_err(ours(0), ref)
    e_dense = rel_err(F.linear(xm, sh.w[0]), ref)

    peer = {}
    if teal is not None and M == 1:  # TEAL's published kernel (experiments.bench.peer_teal), same inputs and weights
        t_teal = graph_time_us([lambda i=i: teal(xs[i], sh.w_t[i], t, s) for i in range(n)], reps)
        peer = dict(teal_us=round(t_teal, 2), teal_speedup=round(t_dense / t_teal, 3),
                    ours_vs_teal=round(t_teal / t_kern, 3),
                    err_teal=f"{rel_err(teal(xs[0], sh.w_t[0], t, s).view(M, N), ref):.2e}")
    esz = torch.finfo(dtype).bits // 8
    sel_bytes = union * K * N * esz
    gbs = sel_bytes / (t_kern * 1e-6) / 1e9
    speed = t_dense / t_kern
    limit = 1.0 / (1.0 - s)
    return dict(shape=f"{N}x{K}", M=M, s=s, row_density=round(row_density, 4), union=round(union, 4),
                dense_us=round(t_dense, 2), kernel_us=round(t_kern, 2), speedup=round(speed, 3),
                limit=round(limit, 3), frac_limit=round(speed / limit, 3),
                union_limit=round(1.0 / max(union, 1e-9), 3), frac_union=round(speed * union, 3),
                GBps=round(gbs, 1), pct_copy_bw=round(100 * gbs / copy_bw, 1),
                err_kernel=f"{e_kern:.2e}", err_dense=f"{e_dense:.2e}", err_ratio=round(e_kern / e_dense, 3),
                path=path, **extra, **peer)


def triton_cfg_name(c: GatedConfig) -> str:
    return f"{c.BN}/{c.BK}/{c.CK}/w{c.num_warps}{'' if c.fused else 'U'}p{c.pipe}s{c.stages}{'L' if c.last_reduce else ''}"


def dispatched_path(x, sh: Shape, triton_cfg: GatedConfig) -> str:
    """Which path ``kernels.dispatch.gated_linear_auto`` takes for ``x`` (and its launch config)."""
    if not dispatch.kernel_applies(x, sh.w[0]):
        return "torch: mask + F.linear"
    if dispatch.cuda_applies(x, sh.w_t[0]):
        return "cuda " + dispatch.cuda_config(sh.N, sh.K, torch.cuda.current_device()).name
    return "triton " + triton_cfg_name(triton_cfg)


def selection_rows(dtype, reps):
    rows = []
    for K in (4096, 5120, 14336):
        for M in (1, 8, 64):
            x = torch.randn(M, K, device="cuda").to(dtype)
            c = torch.rand(K, device="cuda") + 0.5
            k = K // 2
            t_tri = graph_time_us([lambda: topk_threshold(x, k, c)], reps)
            t_tor = graph_time_us([lambda: topk_threshold_torch(x, k, c)], reps)
            ok = torch.equal(topk_threshold(x, k, c), topk_threshold_torch(x, k, c))
            rows.append(dict(what=f"top-k threshold K={K} M={M}", triton_us=round(t_tri, 2),
                             torch_topk_us=round(t_tor, 2), exact_match=ok))
    return rows


def gate_variant_rows(sh: Shape, dtype, reps):
    """Cost of the gate flavours at 50%, batch 1 (same weights, rotated)."""
    K, n = sh.K, sh.n
    xs = [torch.randn(1, K, device="cuda").to(dtype) for _ in range(n)]
    c = sh.w_t[0].float().norm(dim=1)
    t = calibrate_threshold(torch.cat(xs[:4]), None, 0.5)
    tw = calibrate_threshold(torch.cat(xs[:4]), c, 0.5)
    tt = torch.tensor(t, device="cuda")
    per_ch = (tw / c).contiguous()
    variants = {
        "scalar float (TEAL)": lambda i: gated_linear(xs[i], sh.w_t[i], t),
        "0-d tensor (TEAL)": lambda i: gated_linear(xs[i], sh.w_t[i], tt),
        "per-channel t/c (WINA)": lambda i: gated_linear(xs[i], sh.w_t[i], per_ch),
        "scale=c, scalar t (WINA)": lambda i: gated_linear(xs[i], sh.w_t[i], tw, scale=c),
        "top-k per row (Triton sel.) + kernel": lambda i: gated_linear(
            xs[i], sh.w_t[i], topk_threshold(xs[i], K // 2, c), scale=c),
        "torch.topk + kernel": lambda i: gated_linear(
            xs[i], sh.w_t[i], topk_threshold_torch(xs[i], K // 2, c), scale=c),
    }
    rows = []
    for name, f in variants.items():
        rows.append(dict(what=f"{sh.N}x{sh.K} M=1 s=0.5: {name}",
                         triton_us=round(graph_time_us([lambda i=i: f(i) for i in range(n)], reps), 2),
                         torch_topk_us="", exact_match=""))
    return rows


def sweep_configs(M, N=None, K=None):
    C = GatedConfig
    if M == 1:
        cl = [C(BN=bn, BK=bk, CK=ck) for bn in (64, 128, 256) for bk in (16, 32) for ck in (512, 1024, 2048)]
        cl += [C(BN=128, BK=32, CK=ck, pipe=0, stages=ns) for ck in (512, 1024, 2048) for ns in (3, 4)]
        cl += [C(BN=128, BK=32, CK=1024, last_reduce=False), C(BN=128, BK=32, CK=1024, fused=False)]
        if N is not None:  # the current tuned config
            cl.append(pick_config(1, N, K, torch.device("cuda")))
        return list(dict.fromkeys(cl))
    bm = 16 if M <= 16 else 64
    w = 4 if bm == 16 else 8
    bk = 64 if bm == 16 else 32
    return [C(BM=bm, BN=bn, BK=bk, CK=ck, num_warps=w, fused=fu, stages=st)
            for bn in (64, 128) for ck in (256, 512) for fu in (False, True) for st in (1, 3)]


def sweep(shape_list, dtype, copy_bw, l2, reps, out_dir, batches):
    """Time launch configs per (M bucket, shape); write the best to tuned_configs.json.

    Score of a config: the sum over the swept sparsities of limit / speed-up (1 / fraction of the
    limit), so every sparsity weighs the same.  Rows and the table are written as they come."""
    import json
    from kernels.gated_gemv import config_dict, tuned_key
    tuned, first = {}, True
    csv_path = os.path.join(out_dir, "sweep.csv")
    for o, i in shape_list:
        sh = Shape(o, i, dtype, l2)
        for M in batches:
            score = {}
            for s in ((0.0, 0.5, 0.65, 0.8) if M == 1 else (0.8,)):
                dense = None
                for cfg in sweep_configs(M, o, i):
                    try:
                        r = bench_row(sh, M, s, dtype, copy_bw, reps, cfg, dense_us=dense)
                    except Exception as e:  # noqa: BLE001
                        print("config failed", cfg, repr(e)[:300], flush=True)
                        continue
                    dense = r["dense_us"]
                    r["cfg"] = str(config_dict(cfg))
                    with open(csv_path, "a", newline="") as f:
                        wr = csv.DictWriter(f, fieldnames=list(r.keys()))
                        if first:
                            wr.writeheader()
                            first = False
                        wr.writerow(r)
                    score.setdefault(cfg, []).append(r["limit"] / r["speedup"])
            if not score:
                continue
            best = min(score, key=lambda c: sum(score[c]))
            tuned[tuned_key(M, o, i)] = config_dict(best)
            print(f"SWEEP {o}x{i} M={M}: best {config_dict(best)} 1/frac_limit {[round(v, 3) for v in score[best]]}",
                  flush=True)
            for c in sorted(score, key=lambda c: sum(score[c]))[:6]:
                print(f"   {[round(v, 3) for v in score[c]]} {config_dict(c)}", flush=True)
            with open(os.path.join(out_dir, "tuned_configs.json"), "w") as f:
                json.dump(tuned, f, indent=1, sort_keys=True)
        del sh
        torch.cuda.empty_cache()


def md_table(rows):
    keys = list(rows[0].keys())
    return markdown_table(keys, [[r[k] for k in keys] for r in rows])


def code_version() -> str:
    """What made a table: the sha256 of the kernel sources and tuned launch tables (``kernels/*.py``, ``*.cu``,
    ``tuned_configs.json``, ``cuda_tuned.json``), and the git commit where there is one (the GPU host runs a copy without git).
    A table is only ever written whole, from the rows this run measured."""
    import hashlib
    import subprocess

    kernels_dir = os.path.dirname(os.path.abspath(kernels.__file__))
    digest = hashlib.sha256()
    for name in sorted(os.listdir(kernels_dir)):
        if name.endswith((".py", ".cu")) or name in ("tuned_configs.json", "cuda_tuned.json"):
            with open(os.path.join(kernels_dir, name), "rb") as f:
                digest.update(name.encode() + f.read())
    out = f"kernels sha256 {digest.hexdigest()[:12]}"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=kernels_dir, capture_output=True,
                                text=True, check=True).stdout.strip()
        same = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "."], cwd=kernels_dir).returncode == 0
        return out + f", commit {commit}" + ("" if same else " (the kernel sources differ from that commit's)")
    except (OSError, subprocess.CalledProcessError):
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="results/kernels")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp16"])
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--quick", action="store_true", help="batch 1 only, 50/80%% only")
    ap.add_argument("--sweep", action="store_true", help="tune launch configs instead")
    ap.add_argument("--shapes", default="", help="e.g. 14336x4096,4096x4096")
    ap.add_argument("--batches", default="", help="e.g. 1,8")
    ap.add_argument("--tuned", default="", help="tuned_configs.json to load (else kernels/ default)")
    ap.add_argument("--teal", default=os.environ.get("TEAL_CHECKOUT", ""),
                    help="a FasterDecoding/TEAL checkout outside this repository: its kernel timed beside ours at "
                         "batch 1 (experiments/bench/peer_teal.py); skipped when absent")
    args = ap.parse_args()
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float16
    os.makedirs(args.out, exist_ok=True)
    cmd = "python -m experiments.bench.kernels " + " ".join(sys.argv[1:])
    dev = torch.cuda.get_device_name()
    props = torch.cuda.get_device_properties(0)
    l2 = getattr(props, "L2_cache_size", 50 * 2**20)
    copy_bw = copy_bandwidth_gbs()
    head = (f"device: {dev} ({props.multi_processor_count} SMs, L2 {l2 / 2**20:.0f} MiB), torch {torch.__version__}, "
            f"dtype {args.dtype}\ncommand: {cmd}\ncode: {code_version()}"
            f"\ncopy bandwidth (device-to-device, read+write): {copy_bw:.0f} GB/s")
    print(head, flush=True)
    shapes = SHAPES
    if args.shapes:
        shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    t0 = time.time()
    if args.tuned:
        print("tuned configs loaded:", sum(load_tuned(f) for f in args.tuned.split(",")))
    if args.sweep:
        bts = [int(b) for b in args.batches.split(",")] if args.batches else [1, 8, 64]
        sweep(shapes, dtype, copy_bw, l2, max(20, args.reps // 2), args.out, bts)
        return
    teal = load_teal(args.teal)
    print(f"TEAL's kernel: {'from ' + args.teal if teal else 'absent (--teal CHECKOUT), not timed'}", flush=True)
    rows, sel = [], []
    sps = [0.5, 0.8] if args.quick else SPARSITIES
    bts = [1] if args.quick else BATCHES
    if args.batches:
        bts = [int(b) for b in args.batches.split(",")]
    for o, i in shapes:
        sh = Shape(o, i, dtype, l2)
        for M in bts:
            for s in sps:
                r = bench_row(sh, M, s, dtype, copy_bw, args.reps, teal=teal)
                rows.append(r)
                print(" ".join(f"{k}={v}" for k, v in r.items()), flush=True)
        if (o, i) == shapes[0]:
            sel += gate_variant_rows(sh, dtype, args.reps)
        del sh
        torch.cuda.empty_cache()
    sel = selection_rows(dtype, args.reps) + sel
    tag = f"bench_kernels_{args.dtype}" + ("_quick" if args.quick else "")
    keys = list(dict.fromkeys(k for r in rows for k in r))  # TEAL's columns: batch-1 rows only
    rows = [{k: r.get(k, "") for k in keys} for r in rows]
    with open(os.path.join(args.out, tag + ".csv"), "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=keys)
        wr.writeheader()
        wr.writerows(rows)
    md = (f"# Gated-linear kernel vs dense F.linear\n\n{head.replace(chr(10), '  ' + chr(10))}\n\n"
          "Columns: s = target per-row sparsity; row_density/union = measured kept fraction per row / "
          "of the union over the batch (weight rows read); limit = 1/(1-s); union_limit = 1/union; "
          "frac_* = speedup / limit; GBps = union bytes / kernel time; err = ||y - y64|| / ||y64|| "
          "on the same gated problem (kernel vs dense F.linear); teal_* = TEAL's published kernel on the same inputs, "
          "weights and threshold (batch 1; ours_vs_teal = TEAL's time / ours).  At s = 0 the kernel still runs "
          "(tensor threshold); gated_linear_auto with a Python threshold 0.0 dispatches to F.linear.\n\n"
          + md_table(rows) + "\n\n## Selection and gate variants (us per call)\n\n" + md_table(sel) + "\n")
    with open(os.path.join(args.out, tag + ".md"), "w") as f:
        f.write(md)
    print()
    print(md)
    print(f"total {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
