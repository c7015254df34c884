"""One pass from activations to gated activations, for batched (prefill / scoring) forwards on a GPU.

``masked_activations(x, rule, value, scale, dense_prefix, kept)`` returns ``x * keep`` where ``keep`` is the gate's
mask on the score ``|x| * scale`` rounded to ``x``'s dtype (exactly ``kernels.score.channel_score``):
- ``rule="topk"``: the ``value`` (= k) largest scores of each row, exactly k: per row, a bisection on the fp32 bit
  pattern of the scores finds the k-th largest (over the bits a score of x's dtype can have: 16 steps for bf16),
  ties at it are kept in channel order until the row holds k;
- ``rule="threshold"``: ``score > value``.
Rows whose position in their sequence (``row % seq_len``) is below ``dense_prefix`` keep everything (the token
policy's dense prefix). The kept count of the gated rows and of all rows is added to ``kept[0]`` / ``kept[1]``
(int64, on the device: no host sync). The PyTorch gates compute the same function in several kernels
(``wina.gated``); this is one kernel that reads ``x`` once and writes the gated copy.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

RULES = {"topk": 0, "threshold": 1}
# Low bits that are zero in the fp32 pattern of a score rounded to x's dtype: the bisection skips them
# (16 steps instead of 31 for bf16).
ZERO_LOW_BITS = {torch.bfloat16: 16, torch.float16: 13}


@triton.jit
def _masked_kernel(x_ptr, s_ptr, y_ptr, kept_ptr, R, N, seq_len, dense_prefix, k, thr,
                   RULE: tl.constexpr, HAS_SCALE: tl.constexpr, SHIFT: tl.constexpr, BLOCK_M: tl.constexpr,
                   BLOCK_N: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_N)
    row_ok = rows < R
    ok = row_ok[:, None] & (cols < N)[None, :]
    offs = rows.to(tl.int64)[:, None] * N + cols[None, :]
    x = tl.load(x_ptr + offs, mask=ok, other=0.0)
    score = tl.abs(x.to(tl.float32))
    if HAS_SCALE:  # channel_score: the scale and the product rounded to x's dtype, as PyTorch computes them
        sc = tl.load(s_ptr + cols, mask=cols < N, other=0.0).to(x_ptr.dtype.element_ty).to(tl.float32)
        score = (score * sc[None, :]).to(x_ptr.dtype.element_ty).to(tl.float32)
    dense = (rows % seq_len) < dense_prefix
    if RULE == 0:
        # scores >= 0 order like their bits; a score rounded to a 16-bit dtype has its low SHIFT bits zero
        bits = tl.where(ok, score.to(tl.int32, bitcast=True) >> SHIFT, -1)
        lo = tl.full([BLOCK_M], -1, tl.int32)  # count(bits > lo) >= k
        hi = tl.full([BLOCK_M], 0x7F800000 >> SHIFT, tl.int32)  # count(bits > hi) < k (k >= 1)
        for _ in range(31 - SHIFT):
            mid = lo + (hi - lo) // 2
            big = tl.sum((bits > mid[:, None]).to(tl.int32), axis=1) >= k
            lo = tl.where(big, mid, lo)
            hi = tl.where(big, hi, mid)
        above = bits > hi[:, None]
        at = bits == hi[:, None]
        room = k - tl.sum(above.to(tl.int32), axis=1)  # ties at the k-th score, kept in channel order
        keep = above | (at & (tl.cumsum(at.to(tl.int32), axis=1) <= room[:, None]))
        keep = keep & (k > 0)
    else:  # PyTorch compares a tensor with a Python number in the tensor's dtype: the threshold rounded to it
        keep = score > tl.full([1, 1], thr, tl.float32).to(x_ptr.dtype.element_ty).to(tl.float32)
    keep = (keep | dense[:, None]) & ok
    tl.store(y_ptr + offs, tl.where(keep, x, 0.0).to(y_ptr.dtype.element_ty), mask=ok)
    per_row = tl.sum(keep.to(tl.int64), axis=1)
    tl.atomic_add(kept_ptr, tl.sum(tl.where(dense, 0, per_row), axis=0))
    tl.atomic_add(kept_ptr + 1, tl.sum(per_row, axis=0))


def masked_activations(x: torch.Tensor, rule: str, value, scale: torch.Tensor | None, dense_prefix: int,
                       kept: torch.Tensor) -> torch.Tensor:
    """``x * keep`` for ``x`` [..., L, N] (see the module docstring); ``kept``: int64 [2] on x's device."""
    n = x.shape[-1]
    seq_len = x.shape[-2] if x.dim() >= 2 else 1
    x2 = x.reshape(-1, n)
    if not x2.is_contiguous():
        x2 = x2.contiguous()
    y = torch.empty_like(x2)
    rows = x2.shape[0]
    block_n = triton.next_power_of_2(n)
    block_m = max(1, min(8, 4096 // block_n))
    k = min(int(value), n) if rule == "topk" else 0
    _masked_kernel[(triton.cdiv(rows, block_m),)](
        x2, scale if scale is not None else x2, y, kept, rows, n, seq_len, int(dense_prefix), k,
        float(value) if rule == "threshold" else 0.0, RULE=RULES[rule], HAS_SCALE=scale is not None,
        SHIFT=ZERO_LOW_BITS.get(x.dtype, 0),
        BLOCK_M=block_m, BLOCK_N=block_n, num_warps=4 if block_m * block_n <= 4096 else 8)
    return y.view(x.shape)
