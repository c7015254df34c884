"""Batch 1: dense, ours (default config), ours with ``GatedConfig(masked=True)`` (two configs) and TEAL's kernel on
the same inputs, weights and threshold (``experiments.bench.kernels.bench_row``), fp16 and bf16, the four shapes.

    python -m experiments.bench.masked_loads [TEAL checkout, default /tmp/teal]
"""
import sys

import torch
from dataclasses import replace
from experiments.bench.kernels import Shape, bench_row, SHAPES, copy_bandwidth_gbs
from experiments.bench.peer_teal import load as load_teal
from kernels.gated_gemv import pick_config
teal = load_teal(sys.argv[1] if len(sys.argv) > 1 else "/tmp/teal")
print("teal:", bool(teal), flush=True)
bw = copy_bandwidth_gbs()
l2 = torch.cuda.get_device_properties(0).L2_cache_size
dev = torch.device("cuda")
print("| dtype | shape | s | dense us | ours us | masked us | masked2 us | teal us | ours/teal | masked/teal | best/teal | err ours | err masked | err teal | err dense |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for dname, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
    for o, i in SHAPES:
        sh = Shape(o, i, dtype, l2)
        base = pick_config(1, o, i, dev)
        for s in (0.0, 0.25, 0.4, 0.5, 0.65, 0.8):
            r = bench_row(sh, 1, s, dtype, bw, 50, teal=teal)
            m = bench_row(sh, 1, s, dtype, bw, 50, cfg=replace(base, masked=True), dense_us=r["dense_us"])
            m2 = bench_row(sh, 1, s, dtype, bw, 50, cfg=replace(base, masked=True, BN=128, CK=512, BK=32), dense_us=r["dense_us"])
            t = r.get("teal_us", float("nan"))
            best = min(r["kernel_us"], m["kernel_us"], m2["kernel_us"])
            print(f"| {dname} | {o}x{i} | {s} | {r['dense_us']} | {r['kernel_us']} | {m['kernel_us']} | {m2['kernel_us']} | {t} | "
                  f"{t / r['kernel_us']:.3f} | {t / m['kernel_us']:.3f} | {t / best:.3f} | {r['err_kernel']} | {m['err_kernel']} | "
                  f"{r.get('err_teal', '')} | {r['err_dense']} |", flush=True)
        print(f"<!-- base cfg {o}x{i}: {base} -->", flush=True)
        del sh; torch.cuda.empty_cache()
