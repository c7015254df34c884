"""One pass from activations to gated activations, for batched (prefill / scoring) forwards on a GPU.

``masked_activations(x, rule, value, scale, dense_prefix, kept)`` returns ``x * keep`` where ``keep`` is the gate's
mask on the score ``|x| * scale`` rounded to ``x``'s dtype (exactly ``kernels.score.channel_score``):
- ``rule="topk"``: the ``value`` (= k) largest scores of each row, exactly k: per row, a bisection on an integer
  key that orders like the score finds the k-th largest (fp16/bf16: the score's 15 bits, two keys counted per 32-bit
  operation; fp32: its bit pattern), ties at it are kept in channel order until the row holds k. The bisection
  starts from the row's largest key and a window below it (8 binades) when the window holds k keys, else from 0;
- ``rule="threshold"``: ``score > value``.
Rows whose position in their sequence (``row % seq_len``) is below ``dense_prefix`` keep everything (the token
policy's dense prefix). The kept count of the gated rows and of all rows is added to ``kept[0]`` / ``kept[1]``
(int64, on the device: no host sync); top-k keeps exactly k per gated row, so those counts are known from the shape
and one program adds them. A row of N channels is read as up to three power-of-two chunks (576 = 512 + 64,
1536 = 1024 + 512), not one block padded to the next power of two. The PyTorch gates compute the same function in
several kernels (``wina.gated``); this is one kernel that reads ``x`` once and writes the gated copy.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from triton.runtime.interpreter import InterpretedFunction

from .parts import _to_out

RULES = {"topk": 0, "threshold": 1}


@triton.jit
def _chunk(x_ptr, s_ptr, rows, row_ok, N, START: tl.constexpr, C: tl.constexpr, HAS_SCALE: tl.constexpr,
           PACKED: tl.constexpr, FIX_BF16: tl.constexpr, BLOCK_M: tl.constexpr):
    """Channels START .. START + C of ``rows``: values, scores, keys, packed key words, offsets and mask."""
    cols = START + tl.arange(0, C)
    ok = row_ok[:, None] & (cols < N)[None, :]
    offs = rows.to(tl.int64)[:, None] * N + cols[None, :]
    x = tl.load(x_ptr + offs, mask=ok, other=0.0)
    score = tl.abs(x.to(tl.float32))
    if HAS_SCALE:  # channel_score: the scale and the product rounded to x's dtype, as PyTorch computes them
        sc = _to_out(tl.load(s_ptr + cols, mask=cols < N, other=0.0).to(tl.float32), x_ptr, FIX_BF16)
        score = _to_out(score * sc.to(tl.float32)[None, :], x_ptr, FIX_BF16).to(tl.float32)
    if PACKED:
        # 16-bit x: key = the rounded score's own 15 bits + 1 (1 .. 0x7F81; 0 pads), two keys per 32-bit word with
        # bit 15 of each half set, so that one subtraction compares both (``_count_above``)
        rounded = _to_out(score, x_ptr, FIX_BF16)
        if x_ptr.dtype.element_ty == tl.bfloat16:  # a bf16 value's bits are the top half of its fp32 pattern
            bits = rounded.to(tl.float32).to(tl.int32, bitcast=True) >> 16
        else:
            bits = rounded.to(tl.int16, bitcast=True).to(tl.int32)
        key = tl.where(ok, bits + 1, 0)
        even, odd = tl.split(tl.reshape(key, [BLOCK_M, C // 2, 2]))
        words = ((odd << 16) | even).to(tl.uint32, bitcast=True) | 0x80008000
    else:  # fp32: the score's bit pattern (scores >= 0 order like their bits); -1 pads
        key = tl.where(ok, score.to(tl.int32, bitcast=True), -1)
        words = key
    return x, score, key, words, offs, ok


@triton.jit
def _count_above(words, lo, PACKED: tl.constexpr):
    """Per row: how many keys exceed ``lo``. Packed: (key | 0x8000) - (lo + 1) has bit 15 set iff key > lo, and no
    borrow crosses between the two halves of a word."""
    if PACKED:
        m1 = (lo + 1).to(tl.uint32)
        both = tl.sum(((words - ((m1 << 16) | m1)[:, None]) >> 15) & 0x10001, axis=1)
        return ((both & 0xFFFF) + (both >> 16)).to(tl.int32)
    else:
        return tl.sum((words > lo[:, None]).to(tl.int32), axis=1)


@triton.jit
def _keep_ties_in_order(key, hi, room, before):
    """Keys above the k-th key ``hi``, and the keys equal to it while ``before`` (equal keys in earlier chunks) plus
    the running count stays within ``room``; also the updated ``before``."""
    at = key == hi[:, None]
    keep = (key > hi[:, None]) | (at & (tl.cumsum(at.to(tl.int32), axis=1) + before[:, None] <= room[:, None]))
    return keep, before + tl.sum(at.to(tl.int32), axis=1)


@triton.jit
def _store(y_ptr, x, keep, dense, offs, ok):
    keep = (keep | dense[:, None]) & ok
    tl.store(y_ptr + offs, tl.where(keep, x, 0.0).to(y_ptr.dtype.element_ty), mask=ok)
    return tl.sum(keep.to(tl.int32), axis=1)


# Row counts, sequence lengths, prefixes, k and the counts change from batch to batch: specialising on them (Triton's
# default for integers: divisible by 16, equal to 1) would compile a variant per combination during the first forwards.
@triton.jit(do_not_specialize=["R", "seq_len", "dense_prefix", "k", "add_gated", "add_all"])
def _masked_kernel(x_ptr, s_ptr, y_ptr, kept_ptr, R, N, seq_len, dense_prefix, k, thr, add_gated, add_all,
                   RULE: tl.constexpr, HAS_SCALE: tl.constexpr, PACKED: tl.constexpr, FIX_BF16: tl.constexpr,
                   WINDOW: tl.constexpr, BLOCK_M: tl.constexpr, C0: tl.constexpr, C1: tl.constexpr,
                   C2: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < R
    dense = (rows % seq_len) < dense_prefix
    x0, s0, key0, w0, offs0, ok0 = _chunk(x_ptr, s_ptr, rows, row_ok, N, 0, C0, HAS_SCALE, PACKED, FIX_BF16, BLOCK_M)
    if C1 > 0:
        x1, s1, key1, w1, offs1, ok1 = _chunk(x_ptr, s_ptr, rows, row_ok, N, C0, C1, HAS_SCALE, PACKED, FIX_BF16,
                                              BLOCK_M)
    if C2 > 0:
        x2, s2, key2, w2, offs2, ok2 = _chunk(x_ptr, s_ptr, rows, row_ok, N, C0 + C1, C2, HAS_SCALE, PACKED,
                                              FIX_BF16, BLOCK_M)
    if RULE == 0:
        # Bisection for the k-th largest key of each row: count(key > lo) >= k > count(key > hi) until hi = lo + 1,
        # then hi is the k-th largest key. It starts at hi = the row's largest key, lo = hi - WINDOW when that
        # holds, else the padding key (every real key exceeds it).
        pad = 0 if PACKED else -1
        hi = tl.max(key0, axis=1)
        if C1 > 0:
            hi = tl.maximum(hi, tl.max(key1, axis=1))
        if C2 > 0:
            hi = tl.maximum(hi, tl.max(key2, axis=1))
        lo = tl.full([BLOCK_M], pad, tl.int32)
        if WINDOW > 0:
            near = tl.maximum(hi - WINDOW, pad)
            n_near = _count_above(w0, near, PACKED)
            if C1 > 0:
                n_near += _count_above(w1, near, PACKED)
            if C2 > 0:
                n_near += _count_above(w2, near, PACKED)
            lo = tl.where(n_near >= k, near, lo)
        while tl.max(hi - lo, axis=0) > 1:
            mid = lo + (hi - lo) // 2
            n_above = _count_above(w0, mid, PACKED)
            if C1 > 0:
                n_above += _count_above(w1, mid, PACKED)
            if C2 > 0:
                n_above += _count_above(w2, mid, PACKED)
            big = n_above >= k
            lo = tl.where(big, mid, lo)
            hi = tl.where(big, hi, mid)
        n_above = tl.sum((key0 > hi[:, None]).to(tl.int32), axis=1)
        if C1 > 0:
            n_above += tl.sum((key1 > hi[:, None]).to(tl.int32), axis=1)
        if C2 > 0:
            n_above += tl.sum((key2 > hi[:, None]).to(tl.int32), axis=1)
        # Ties at the k-th key, kept in channel order. The k > 0 terms change nothing in exact arithmetic (with k = 0,
        # hi stays the row's largest key and the room is 0), but Triton 3.6 miscompiles the tie count without them:
        # one tie fewer in the second chunk of fp16 rows of 1536 channels on one or two warps (H100, session 8).
        room = tl.where(k > 0, k - n_above, 0)
        before = tl.zeros([BLOCK_M], tl.int32)
        keep0, before = _keep_ties_in_order(key0, hi, room, before)
        _store(y_ptr, x0, keep0 & (k > 0), dense, offs0, ok0)
        if C1 > 0:
            keep1, before = _keep_ties_in_order(key1, hi, room, before)
            _store(y_ptr, x1, keep1 & (k > 0), dense, offs1, ok1)
        if C2 > 0:
            keep2, before = _keep_ties_in_order(key2, hi, room, before)
            _store(y_ptr, x2, keep2 & (k > 0), dense, offs2, ok2)
        if pid == 0:  # exactly k per gated row, every channel of a dense row: known from the shape
            tl.atomic_add(kept_ptr, add_gated.to(tl.int64))
            tl.atomic_add(kept_ptr + 1, add_all.to(tl.int64))
    else:  # PyTorch compares a tensor with a Python number in the tensor's dtype: the threshold rounded to it
        t = tl.full([1, 1], thr, tl.float32).to(x_ptr.dtype.element_ty).to(tl.float32)
        per_row = _store(y_ptr, x0, s0 > t, dense, offs0, ok0)
        if C1 > 0:
            per_row += _store(y_ptr, x1, s1 > t, dense, offs1, ok1)
        if C2 > 0:
            per_row += _store(y_ptr, x2, s2 > t, dense, offs2, ok2)
        tl.atomic_add(kept_ptr, tl.sum(tl.where(dense, 0, per_row), axis=0).to(tl.int64))
        tl.atomic_add(kept_ptr + 1, tl.sum(per_row, axis=0).to(tl.int64))


def chunks(n: int) -> tuple[int, int, int]:
    """A row of ``n`` channels as up to three power-of-two chunks (0: none), the last one padded: 576 -> (512, 64, 0),
    1536 -> (1024, 512, 0), 1000 -> (512, 256, 256). Each chunk holds at least 2 (keys go in pairs)."""
    out = []
    rest = n
    while rest > 0 and len(out) < 2:
        c = 1 << (rest.bit_length() - 1)
        out.append(c)
        rest -= c
    out.append(triton.next_power_of_2(rest) if rest > 0 else 0)
    out += [0] * (3 - len(out))
    return tuple(max(2, c) if c else 0 for c in out)


def launch_config(n: int, rule: str = "topk") -> tuple[int, int]:
    """(rows per program, warps) for rows of ``n`` channels. Top-k: one row per program and a warp per 2048 channels
    of the largest chunk (the bisection's counts stay within a warp); threshold: blocks of about 4096 values.
    Measured on an H100 with ``python -m experiments.bench.mask --sweep`` (bf16, 8192 rows of 576 and 1536 channels)."""
    block_n = chunks(n)[0]
    if rule == "topk":
        return 1, max(1, min(8, block_n // 2048))
    block_m = max(1, min(8, 4096 // block_n))
    return block_m, 4 if block_m * block_n <= 4096 else 8


WINDOWS = {torch.bfloat16: 8 << 7, torch.float16: 8 << 10, torch.float32: 8 << 23}  # 8 binades of keys


def masked_activations(x: torch.Tensor, rule: str, value, scale: torch.Tensor | None, dense_prefix: int,
                       kept: torch.Tensor, config: tuple[int, int] | None = None, window: bool = True) -> torch.Tensor:
    """``x * keep`` for ``x`` [..., L, N] (see the module docstring); ``kept``: int64 [2] on x's device;
    ``config``: (rows per program, warps), default ``launch_config(N, rule)``; ``window``: start the top-k bisection
    from the window below the row's largest key (off: from the whole key range; same result)."""
    n = x.shape[-1]
    seq_len = x.shape[-2] if x.dim() >= 2 else 1
    x2 = x.reshape(-1, n)
    if not x2.is_contiguous():
        x2 = x2.contiguous()
    y = torch.empty_like(x2)
    rows = x2.shape[0]
    block_m, warps = config or launch_config(n, rule)
    k = min(int(value), n) if rule == "topk" else 0
    dense_rows = rows // seq_len * min(int(dense_prefix), seq_len)
    add_gated = (rows - dense_rows) * k
    c0, c1, c2 = chunks(n)
    _masked_kernel[(triton.cdiv(rows, block_m),)](
        x2, scale if scale is not None else x2, y, kept, rows, n, seq_len, int(dense_prefix), k,
        float(value) if rule == "threshold" else 0.0, add_gated, add_gated + dense_rows * n,
        RULE=RULES[rule], HAS_SCALE=scale is not None, PACKED=x.dtype in (torch.float16, torch.bfloat16),
        FIX_BF16=x.dtype == torch.bfloat16 and isinstance(_masked_kernel, InterpretedFunction),
        WINDOW=WINDOWS[x.dtype] if window else 0, BLOCK_M=block_m, C0=c0, C1=c1, C2=c2, num_warps=warps)
    return y.view(x.shape)
