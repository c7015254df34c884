"""Channel selection helpers: offline threshold calibration and a fast per-row top-k threshold.

* ``calibrate_threshold(x_samples, scale, sparsity)``: the scalar t with which ``|x| * scale > t``
  skips a ``sparsity`` fraction of the samples (TEAL: scale=None; WINA: scale = column norms c of W),
  by the quantile rule shared with the harness's gates (``kernels.score.quantile_threshold``).
* ``topk_threshold(x, k, scale)``: per-row threshold [..., 1] such that ``|x| * scale > t``
  keeps exactly the k largest scores of each row (ties aside).  Triton kernel: one program per
  row bisects on the fp32 bit pattern of the scores (non-negative floats order like their bits),
  31 compare-and-count passes over a row held in registers, exact, no sort.
  Feed the result to ``gated_linear(x, w_t, t, scale=scale)``.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .score import quantile_threshold, sorted_scores, topk_threshold_torch


def calibrate_threshold(x_samples: torch.Tensor, scale: torch.Tensor | None = None, sparsity: float = 0.5) -> float:
    """The scalar t with which ``|x| * scale > t`` skips a ``sparsity`` fraction of ``x_samples`` ([..., in]):
    the shared quantile rule of ``kernels.score`` (-inf at sparsity 0)."""
    return quantile_threshold(sorted_scores(x_samples.reshape(-1, x_samples.shape[-1]), scale), sparsity)


@triton.jit
def _topk_thr_kernel(x_ptr, s_ptr, t_ptr, K, k, stride_xm,
                     HAS_SCALE: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    offs = tl.arange(0, BLOCK)
    ok = offs < K
    a = tl.abs(tl.load(x_ptr + row.to(tl.int64) * stride_xm + offs, mask=ok, other=0.0).to(tl.float32))
    if HAS_SCALE:
        a = a * tl.load(s_ptr + offs, mask=ok, other=0.0).to(tl.float32)
    bits = a.to(tl.int32, bitcast=True)
    bits = tl.where(ok, bits, -1)          # padding never counts as "greater"
    # invariant: count(bits > lo) > k, count(bits > hi) <= k
    lo = tl.full([], -1, tl.int32)
    hi = tl.full([], 0x7F800000, tl.int32)  # +inf
    for _ in range(31):
        mid = lo + (hi - lo) // 2
        c = tl.sum((bits > mid).to(tl.int32), axis=0)
        big = c > k
        lo = tl.where(big, mid, lo)
        hi = tl.where(big, hi, mid)
    t = hi.to(tl.float32, bitcast=True)
    n_valid = tl.sum(ok.to(tl.int32), axis=0)
    t = tl.where(n_valid <= k, -1.0, t)    # k >= K: keep everything
    tl.store(t_ptr + row, t)


def topk_threshold(x: torch.Tensor, k: int, scale: torch.Tensor | None = None,
                   use_triton: bool | None = None) -> torch.Tensor:
    """Per-row fp32 threshold [..., 1]: ``|x| * scale > t`` keeps the top-k scores of each row."""
    K = x.shape[-1]
    x2 = x.reshape(-1, K)
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    M = x2.shape[0]
    if use_triton is None:
        use_triton = x.is_cuda or x.device.type == "cpu" and _interpreting()
    if not use_triton:
        return topk_threshold_torch(x, k, scale)
    t = torch.empty((M,), device=x.device, dtype=torch.float32)
    BLOCK = triton.next_power_of_2(K)
    warps = 4 if BLOCK <= 4096 else (8 if BLOCK <= 8192 else 16)
    _topk_thr_kernel[(M,)](x2, scale if scale is not None else x2, t, K, int(k), x2.stride(0),
                           HAS_SCALE=scale is not None, BLOCK=BLOCK, num_warps=warps)
    return t.reshape(*x.shape[:-1], 1)


def _interpreting() -> bool:
    from triton.runtime.interpreter import InterpretedFunction
    return isinstance(_topk_thr_kernel, InterpretedFunction)


__all__ = ["calibrate_threshold", "topk_threshold", "topk_threshold_torch"]
