"""One pass from activations to gated activations, for batched (prefill / scoring) forwards on a GPU.

``masked_activations(x, rule, value, scale, dense_prefix, kept)`` returns ``x * keep`` where ``keep`` is the gate's
mask on the score ``|x| * scale`` rounded to ``x``'s dtype (exactly ``kernels.score.channel_score``):
- ``rule="topk"``: the ``value`` (= k) largest scores of each row, exactly k: per row, a bisection on an integer
  key that orders like the score finds the k-th largest (fp16/bf16: the score's 15 bits, two keys counted per 32-bit
  operation, 15 steps; fp32: its bit pattern, 31 steps), ties at it are kept in channel order until the row holds k;
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
from triton.runtime.interpreter import InterpretedFunction

from .parts import _to_out

RULES = {"topk": 0, "threshold": 1}


# Row counts, sequence lengths, prefixes and k change from batch to batch: specialising on them (Triton's default for
# integers: divisible by 16, equal to 1) would compile a variant per combination during the first forwards.
@triton.jit(do_not_specialize=["R", "seq_len", "dense_prefix", "k"])
def _masked_kernel(x_ptr, s_ptr, y_ptr, kept_ptr, R, N, seq_len, dense_prefix, k, thr,
                   RULE: tl.constexpr, HAS_SCALE: tl.constexpr, PACKED: tl.constexpr, FIX_BF16: tl.constexpr,
                   BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_N)
    row_ok = rows < R
    ok = row_ok[:, None] & (cols < N)[None, :]
    offs = rows.to(tl.int64)[:, None] * N + cols[None, :]
    x = tl.load(x_ptr + offs, mask=ok, other=0.0)
    score = tl.abs(x.to(tl.float32))
    if HAS_SCALE:  # channel_score: the scale and the product rounded to x's dtype, as PyTorch computes them
        sc = _to_out(tl.load(s_ptr + cols, mask=cols < N, other=0.0).to(tl.float32), x_ptr, FIX_BF16)
        sc = sc.to(tl.float32)
        score = _to_out(score * sc[None, :], x_ptr, FIX_BF16).to(tl.float32)
    dense = (rows % seq_len) < dense_prefix
    if RULE == 0:
        # Bisection for the k-th largest score of each row on an integer key that orders like the score: count(key
        # > lo) >= k > count(key > hi) until hi = lo + 1, then hi is the k-th largest key.
        if PACKED:
            # 16-bit x: key = the score's own 15 bits + 1 (1 .. 0x7F81; 0 pads), two keys per 32-bit word, and one
            # subtraction counts both: (key | 0x8000) - (lo + 1) has bit 15 set iff key > lo (no borrow between
            # the halves). Half the instructions per bisection step.
            rounded = _to_out(score, x_ptr, FIX_BF16)
            if x_ptr.dtype.element_ty == tl.bfloat16:  # a bf16 value's bits are the top half of its fp32 pattern
                bits = rounded.to(tl.float32).to(tl.int32, bitcast=True) >> 16
            else:
                bits = rounded.to(tl.int16, bitcast=True).to(tl.int32)
            key = tl.where(ok, bits + 1, 0)
            even, odd = tl.split(tl.reshape(key, [BLOCK_M, BLOCK_N // 2, 2]))
            words = ((odd << 16) | even).to(tl.uint32, bitcast=True) | 0x80008000
            lo = tl.zeros([BLOCK_M], tl.int32)
            hi = tl.full([BLOCK_M], 0x7F82, tl.int32)
            for _ in range(15):
                mid = lo + (hi - lo) // 2
                m1 = (mid + 1).to(tl.uint32)
                hits = ((words - ((m1 << 16) | m1)[:, None]) >> 15) & 0x10001
                both = tl.sum(hits, axis=1)
                big = ((both & 0xFFFF) + (both >> 16)).to(tl.int32) >= k
                lo = tl.where(big, mid, lo)
                hi = tl.where(big, hi, mid)
        else:  # fp32: the score's bit pattern (scores >= 0 order like their bits); -1 pads
            key = tl.where(ok, score.to(tl.int32, bitcast=True), -1)
            lo = tl.full([BLOCK_M], -1, tl.int32)
            hi = tl.full([BLOCK_M], 0x7F800000, tl.int32)
            for _ in range(31):
                mid = lo + (hi - lo) // 2
                big = tl.sum((key > mid[:, None]).to(tl.int32), axis=1) >= k
                lo = tl.where(big, mid, lo)
                hi = tl.where(big, hi, mid)
        above = key > hi[:, None]
        at = key == hi[:, None]
        room = k - tl.sum(above.to(tl.int32), axis=1)  # ties at the k-th score, kept in channel order
        keep = above | (at & (tl.cumsum(at.to(tl.int32), axis=1) <= room[:, None]))
        keep = keep & (k > 0)
    else:  # PyTorch compares a tensor with a Python number in the tensor's dtype: the threshold rounded to it
        keep = score > tl.full([1, 1], thr, tl.float32).to(x_ptr.dtype.element_ty).to(tl.float32)
    keep = (keep | dense[:, None]) & ok
    tl.store(y_ptr + offs, tl.where(keep, x, 0.0).to(y_ptr.dtype.element_ty), mask=ok)
    per_row = tl.sum(keep.to(tl.int32), axis=1)
    tl.atomic_add(kept_ptr, tl.sum(tl.where(dense, 0, per_row), axis=0).to(tl.int64))
    tl.atomic_add(kept_ptr + 1, tl.sum(per_row, axis=0).to(tl.int64))


def launch_config(n: int, rule: str = "topk") -> tuple[int, int]:
    """(rows per program, warps) for rows of ``n`` channels. Top-k: one row per program and a warp per 2048 channels
    (the bisection's counts stay within a warp); threshold: blocks of about 4096 values. Measured on an H100 with
    ``python -m experiments.bench.mask --sweep`` (bf16, 8192 rows of 576 and 1536 channels)."""
    block_n = triton.next_power_of_2(n)
    if rule == "topk":
        return 1, max(1, min(8, block_n // 2048))
    block_m = max(1, min(8, 4096 // block_n))
    return block_m, 4 if block_m * block_n <= 4096 else 8


def masked_activations(x: torch.Tensor, rule: str, value, scale: torch.Tensor | None, dense_prefix: int,
                       kept: torch.Tensor, config: tuple[int, int] | None = None) -> torch.Tensor:
    """``x * keep`` for ``x`` [..., L, N] (see the module docstring); ``kept``: int64 [2] on x's device;
    ``config``: (rows per program, warps), default ``launch_config(N, rule)``."""
    n = x.shape[-1]
    seq_len = x.shape[-2] if x.dim() >= 2 else 1
    x2 = x.reshape(-1, n)
    if not x2.is_contiguous():
        x2 = x2.contiguous()
    y = torch.empty_like(x2)
    rows = x2.shape[0]
    block_m, warps = config or launch_config(n, rule)
    k = min(int(value), n) if rule == "topk" else 0
    _masked_kernel[(triton.cdiv(rows, block_m),)](
        x2, scale if scale is not None else x2, y, kept, rows, n, seq_len, int(dense_prefix), k,
        float(value) if rule == "threshold" else 0.0, RULE=RULES[rule], HAS_SCALE=scale is not None,
        PACKED=x.dtype in (torch.float16, torch.bfloat16),
        FIX_BF16=x.dtype == torch.bfloat16 and isinstance(_masked_kernel, InterpretedFunction),
        BLOCK_M=block_m, BLOCK_N=max(2, triton.next_power_of_2(n)), num_warps=warps)
    return y.view(x.shape)
