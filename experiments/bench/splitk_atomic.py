"""Batch 1: the atomic split-K GEMV (``kernels.splitk_atomic``, non-deterministic) beside our deterministic kernel,
TEAL's published kernel and dense ``F.linear``, on the same inputs, weights and threshold as
``experiments.bench.kernels.bench_row``; the atomic kernel's time is the best of ``CONFIGS`` (block_k, block_n,
warps) per cell, as TEAL's autotuner picks per sparsity bin.

    python -m experiments.bench.splitk_atomic [--teal CHECKOUT] [--dtypes fp16,bf16] [--reps 30]
"""
from __future__ import annotations

import argparse

import torch

from experiments.bench.kernels import (SHAPES, Shape, bench_inputs, bench_row, code_version, copy_bandwidth_gbs,
                                      graph_time_us, rel_err)
from experiments.bench.peer_teal import load as load_teal
from kernels.score import threshold_mask
from kernels.splitk_atomic import gated_linear_atomic

CONFIGS = [(8, 128, 2), (16, 256, 4), (32, 256, 4), (64, 128, 2), (64, 256, 4), (128, 128, 4), (32, 512, 4),
           (64, 512, 4)]
SPARSITIES = [0.0, 0.25, 0.5, 0.65, 0.8]


def atomic_row(sh: Shape, s: float, dtype, reps: int) -> dict:
    """The best atomic config's time on bench_row's inputs (``bench_inputs``: the same activations, threshold and
    weight copies)."""
    xs, t = bench_inputs(sh, 1, s, dtype)
    thr = torch.tensor(t, device="cuda", dtype=torch.float32)
    best = None
    for bk, bn, w in CONFIGS:
        us = graph_time_us([lambda i=i: gated_linear_atomic(xs[i], sh.w_t[i], thr, block_k=bk, block_n=bn,
                                                            num_warps=w) for i in range(sh.n)], reps)
        if best is None or us < best[0]:
            best = (us, (bk, bn, w))
    xm = xs[0] * threshold_mask(xs[0].float(), t).to(dtype)
    ref = xm.double() @ sh.w_t[0].double()
    bk, bn, w = best[1]
    err = rel_err(gated_linear_atomic(xs[0], sh.w_t[0], thr, block_k=bk, block_n=bn, num_warps=w), ref)
    return dict(atomic_us=round(best[0], 2), atomic_cfg=f"{bk}/{bn}/w{w}", err_atomic=f"{err:.2e}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--teal", default="", help="a FasterDecoding/TEAL checkout outside this repository")
    ap.add_argument("--dtypes", default="fp16,bf16")
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args(argv)
    teal = load_teal(args.teal)
    bw, l2 = copy_bandwidth_gbs(), torch.cuda.get_device_properties(0).L2_cache_size
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}\ncode: {code_version()}\n"
          f"TEAL: {'from ' + args.teal if teal else 'absent'}\n")
    print("| dtype | shape | s | dense us | ours us | atomic us (cfg) | teal us | atomic/ours | teal/atomic | "
          "err ours | err atomic | err teal | err dense |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.dtypes.split(","):
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[name]
        for o, i in SHAPES:
            sh = Shape(o, i, dtype, l2)
            for s in SPARSITIES:
                r = bench_row(sh, 1, s, dtype, bw, args.reps, teal=teal)
                a = atomic_row(sh, s, dtype, args.reps)
                tu = r.get("teal_us", float("nan"))
                ratios = f"{r['kernel_us'] / a['atomic_us']:.3f} | {tu / a['atomic_us']:.3f}"
                print(f"| {name} | {o}x{i} | {s} | {r['dense_us']} | {r['kernel_us']} | {a['atomic_us']} "
                      f"({a['atomic_cfg']}) | {tu} | {ratios} | {r['err_kernel']} | {a['err_atomic']} | "
                      f"{r.get('err_teal', '')} | {r['err_dense']} |", flush=True)
            del sh
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
