"""Where the gated GEMV's time goes: the kernel timed with parts of its work removed (H100 diagnostics).

    python -m experiments.bench.kernel_breakdown [--shape 14336x4096]

Each variant is a copy of ``kernels/gated_gemv.py`` with one edit (the source is patched as text, so the
variants always track the current kernel); outputs of the variants are wrong by design, only their times mean
anything.  Variants (batch 1, bf16, the tuned launch config, CUDA graphs, weights rotated through > L2):
  normal            the kernel as shipped
  no_weight_bytes   weight loads predicated off: prologue, index/activation loads, loop and epilogue only
  contiguous_rows   compaction still computed, but the kept rows read are a contiguous prefix of the chunk
  no_compaction     no prologue: each chunk reads a contiguous (1 - s) prefix, split-K reduction kept
  no_comp_no_reduce as above, and each program only stores its partial (no ticket, no last-program sum)
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys

import torch
import torch.nn.functional as F

import kernels
from experiments.bench.kernels import Shape, graph_time_us
from experiments.harness.tables import markdown_table
from kernels.gated_gemv import pick_config
from kernels.select import calibrate_threshold

COMPACT = ("        cnt = _compact(x_row, t_ptr, t_val, s_ptr, scr, k0, K, offs_m, m_ok, stride_xm, stride_tm, stride_tk,\n"
           "                       CK, CSUB, THR_MODE, HAS_SCALE, GEMV)")
CONTIG = ("    return tl.where(dense, k0 + oj, idx)", "    return k0 + oj + 0 * idx")
NO_COMPACT = [("    return tl.where(dense, k0 + oj, idx)", "    return k0 + oj"),
              (COMPACT, "        cnt = (k_len * KEEP_FRAC).to(tl.int32)")]
EDITS = {
    "normal": [],
    "no_weight_bytes": [("mask=(o < nk)[:, None] & n_ok[None, :],", "mask=(o < 0)[:, None] & n_ok[None, :],")],
    "contiguous_rows": [CONTIG],
    "no_compaction": NO_COMPACT,
    "no_comp_no_reduce": [*NO_COMPACT, ("DIRECT, LAST_REDUCE, FIX_BF16)", "DIRECT, False, FIX_BF16)")],
}


def variant(name: str, keep: float, out_dir: str):
    src = open(os.path.join(os.path.dirname(kernels.__file__), "gated_gemv.py")).read().replace("from .parts", "from kernels.parts")
    src = src.replace("import triton.language as tl\n", f"import triton.language as tl\nKEEP_FRAC = tl.constexpr({keep})\n", 1)
    for a, b in EDITS[name]:
        if a not in src:
            raise SystemExit(f"error: variant {name}: the kernel source no longer contains {a.strip()[:60]!r}")
        src = src.replace(a, b)
    mod_name = f"_gg_{name}_{int(keep * 100)}"
    path = os.path.join(out_dir, mod_name + ".py")
    with open(path, "w") as f:
        f.write(src)
    spec = importlib.util.spec_from_file_location(mod_name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = mod
    spec.loader.exec_module(mod)
    return mod


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="14336x4096", help="out x in (PyTorch layout)")
    ap.add_argument("--sparsities", default="0.5,0.65,0.8")
    ap.add_argument("--tmp", default="/tmp/kernel_breakdown")
    args = ap.parse_args()
    os.makedirs(args.tmp, exist_ok=True)
    N, K = (int(v) for v in args.shape.split("x"))
    sh = Shape(N, K, torch.bfloat16, torch.cuda.get_device_properties(0).L2_cache_size)
    cfg = pick_config(1, N, K, torch.device("cuda"))
    ones = torch.ones(1, K, device="cuda", dtype=torch.bfloat16)
    dense = graph_time_us([lambda i=i: F.linear(ones, sh.w[i]) for i in range(sh.n)])
    print(f"device {torch.cuda.get_device_name()}; shape {N}x{K}; config {cfg}; dense F.linear {dense:.2f} us")
    rows = []
    for s in (float(v) for v in args.sparsities.split(",")):
        xs = [torch.randn(1, K, device="cuda").bfloat16() for _ in range(sh.n)]
        thr = torch.tensor(calibrate_threshold(torch.cat(xs[:4]), None, s), device="cuda")
        times = []
        for name in EDITS:
            mod = variant(name, 1.0 - s, args.tmp)
            times.append(graph_time_us([lambda i=i: mod.gated_linear(xs[i], sh.w_t[i], thr, config=cfg)
                                        for i in range(sh.n)]))
        rows.append([s, dense * (1 - s), *times])
        print(f"s={s}: " + ", ".join(f"{n} {t:.2f} us" for n, t in zip(EDITS, times)), flush=True)
    print(markdown_table(["s", "limit us", *EDITS], rows, floatfmt=".2f"))


if __name__ == "__main__":
    main()
