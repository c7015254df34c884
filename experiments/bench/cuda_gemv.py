"""Batch 1: the CUDA C++ gated GEMV (``kernels.cuda_gemv``) beside the Triton kernel, TEAL's published kernel and
dense ``F.linear``, on ``experiments.bench.kernels.bench_row``'s inputs (the same activations, threshold and weight
copies rotated through more than 4x L2, CUDA-graph replays). Every CUDA launch config of ``--configs`` is timed per
cell; ``--tune FILE`` writes the best config per shape (the lowest sum over the sparsities of time / best time) as
the table ``kernels.dispatch`` reads.

    python -m experiments.bench.cuda_gemv [--teal CHECKOUT] [--dtype bf16] [--shapes 14336x4096] [--tune FILE]
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
import time

import torch

from experiments.bench.kernels import SHAPES, Shape, bench_inputs, bench_row, code_version, copy_bandwidth_gbs
from experiments.bench.kernels import graph_time_us, md_table, rel_err
from experiments.bench.peer_teal import load as load_teal
from kernels.cuda_gemv import CudaConfig, gated_linear_cuda
from kernels.score import threshold_mask

SPARSITIES = [0.0, 0.25, 0.4, 0.5, 0.65, 0.8]
SWEEP = [CudaConfig(warps=w, unroll=u, rows=r, pipe=p)
         for w, u, r, p in itertools.product((4, 8), (4, 8), (32, 64, 128, 256), (True,))]
SWEEP += [CudaConfig(warps=8, unroll=8, rows=r, pipe=False) for r in (64, 128)]


def cuda_times(sh: Shape, s: float, dtype, reps: int, configs) -> tuple[dict, str]:
    """Time of each config on bench_row's inputs for (shape, s), and the best one's relative error vs float64."""
    xs, t = bench_inputs(sh, 1, s, dtype)
    thr = torch.tensor(t, device="cuda", dtype=torch.float32)
    times = {c: graph_time_us([lambda i=i, c=c: gated_linear_cuda(xs[i], sh.w_t[i], thr, config=c)
                               for i in range(sh.n)], reps) for c in configs}
    best = min(times, key=times.get)
    ref = (xs[0] * threshold_mask(xs[0].float(), t).to(dtype)).double() @ sh.w_t[0].double()
    return times, f"{rel_err(gated_linear_cuda(xs[0], sh.w_t[0], thr, config=best), ref):.2e}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--teal", default="", help="a FasterDecoding/TEAL checkout outside this repository")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp16"])
    ap.add_argument("--shapes", default="", help="e.g. 14336x4096,4096x4096 (default: the four of the kernel bench)")
    ap.add_argument("--sparsities", default="", help="e.g. 0.25,0.5")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--tune", default="", help="write the best config per shape to this JSON file")
    ap.add_argument("--out", default="", help="write the table (markdown) to this file")
    args = ap.parse_args(argv)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")] if args.shapes else SHAPES
    sps = [float(v) for v in args.sparsities.split(",")] if args.sparsities else SPARSITIES
    teal = load_teal(args.teal)
    bw, l2 = copy_bandwidth_gbs(), torch.cuda.get_device_properties(0).L2_cache_size
    head = (f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, dtype {args.dtype}  \n"
            f"command: python -m experiments.bench.cuda_gemv {' '.join(sys.argv[1:] if argv is None else argv)}  \n"
            f"code: {code_version()}  \nTEAL: {'from ' + args.teal if teal else 'absent'}")
    print(head, flush=True)
    rows, tuned, t0 = [], {}, time.time()
    for o, i in shapes:
        sh = Shape(o, i, dtype, l2)
        rel = {}
        for s in sps:
            r = bench_row(sh, 1, s, dtype, bw, args.reps, teal=teal)
            times, err = cuda_times(sh, s, dtype, args.reps, SWEEP)
            best = min(times, key=times.get)
            for c, us in times.items():
                rel.setdefault(c, []).append(us / times[best])
            tu = r.get("teal_us", float("nan"))
            row = dict(shape=f"{o}x{i}", s=s, dense_us=r["dense_us"], triton_us=r["kernel_us"], teal_us=tu,
                       cuda_us=round(times[best], 2), cuda_cfg=best.name,
                       cuda_speedup=round(r["dense_us"] / times[best], 3), limit=r["limit"],
                       frac_limit=round(r["dense_us"] / times[best] / r["limit"], 3),
                       cuda_vs_teal=round(tu / times[best], 3), cuda_vs_triton=round(r["kernel_us"] / times[best], 3),
                       err_cuda=err, err_triton=r["err_kernel"], err_teal=r.get("err_teal", ""),
                       err_dense=r["err_dense"])
            rows.append(row)
            print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
            print("   all: " + " ".join(f"{c.name}={us:.2f}" for c, us in sorted(times.items(), key=lambda kv: kv[1])),
                  flush=True)
        best = min(rel, key=lambda c: sum(rel[c]))
        tuned[f"{o}x{i}"] = dataclasses.asdict(best)
        print(f"TUNED {o}x{i}: {best.name} (sum of time / best time over s: {sum(rel[best]):.3f} "
              f"of {len(rel[best])})", flush=True)
        del sh
        torch.cuda.empty_cache()
    md = f"# CUDA gated GEMV, batch 1\n\n{head}\n\n" + md_table(rows) + "\n"
    print("\n" + md + f"\ntotal {time.time() - t0:.0f}s")
    if args.out:
        with open(args.out, "w") as f:
            f.write(md)
    if args.tune:
        with open(args.tune, "w") as f:
            json.dump(tuned, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
