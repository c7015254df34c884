"""Triton kernel for the gated linear ``y = (x * mask) @ w_t + bias``.

``w_t`` is the weight stored transposed, shape [in, out] (``W.t().contiguous()``),
so one input channel is one contiguous row and skipping a channel skips one
contiguous run of bytes.  The gate is computed inside the kernel:

    mask[m, i] = |x[m, i]| * scale[i] > threshold[m, i]

(threshold broadcastable to [M, in]; scale optional, per input channel).

Work split: program (n-block, k-chunk, m-block).  Each program
  1. gates its chunk of CK input channels for its rows and compacts the indices
     of the channels that ANY of its rows keeps (union) into a scratch list
     (prefix sum + scatter), so the main loop touches only kept weight rows,
     with every load coalesced along ``out``;
  2. loops over the kept rows in blocks of BK: loads w_t rows [BK, BN], the
     (per-row gated) activations, and accumulates in fp32 (GEMV for M == 1,
     tl.dot for M > 1);
  3. with one chunk, writes y directly; otherwise writes an fp32 partial
     [chunk, M, BN], and the last program to finish a tile (a per-tile arrival
     counter) sums that tile's partials over chunks in a fixed order, adds the
     bias and casts (``last_reduce``; a separate reduction kernel only while a
     CUDA graph is captured before the counters exist).  No low-precision
     atomics, deterministic.
If a chunk's union density is above ``dense_cutoff`` the chunk is read densely
(contiguous rows, no index indirection); the decision is made per chunk on the
device, so the launcher never syncs with the host and is CUDA-graph safe.
"""
from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict, dataclass, replace

import torch
import triton
import triton.language as tl
from triton.runtime.interpreter import InterpretedFunction

from .parts import _epilogue, _gate, _to_out


@triton.jit
def _rows(scr, k0, j, nk_idx, dense, BK: tl.constexpr):
    """Input-channel indices of kept-row block j: contiguous (dense chunk) or compacted list."""
    oj = j + tl.arange(0, BK)
    idx = tl.load(scr + oj, mask=oj < nk_idx, other=0)
    return tl.where(dense, k0 + oj, idx)


@triton.jit
def _fetch(w_blk, x_row, rows, j, nk, cols, n_ok, N, BK: tl.constexpr):
    """Issue the loads of kept-row block j: weight rows [BK, BN] and their activations [BK]."""
    o = j + tl.arange(0, BK)
    w = tl.load(w_blk + rows[:, None].to(tl.int64) * N + cols[None, :], mask=(o < nk)[:, None] & n_ok[None, :],
                other=0.0)
    return w, tl.load(x_row + rows, mask=o < nk, other=0.0)


@triton.jit
def _consume(acc2, w, xv, rows, j, nk, nk_gate, t_ptr, t_val, s_ptr, offs_m, stride_tm, stride_tk,
             BK: tl.constexpr, THR_MODE: tl.constexpr, HAS_SCALE: tl.constexpr):
    """acc2 += w * gated x for block j (compacted rows are kept by construction; a dense chunk's rows
    [0, nk_gate) are gated here)."""
    oj = j + tl.arange(0, BK)
    g_ok = oj < nk_gate
    keep = _gate(xv, t_ptr, t_val, s_ptr, rows, offs_m, g_ok, g_ok, stride_tm, stride_tk,
                 THR_MODE, HAS_SCALE, True) | (oj >= nk_gate)
    xf = tl.where(keep & (oj < nk), xv.to(tl.float32), 0.0)
    return acc2 + w.to(tl.float32) * xf[:, None]


@triton.jit
def _compact(x_ptr, t_ptr, t_val, s_ptr, scr, k0, K, offs_m, m_ok, stride_xm, stride_tm, stride_tk,
             CK: tl.constexpr, CSUB: tl.constexpr, THR_MODE: tl.constexpr,
             HAS_SCALE: tl.constexpr, GEMV: tl.constexpr):
    """Write the kept (union over rows) channel indices of [k0, k0+CK) to scr; return count."""
    cnt = 0
    for s in tl.static_range(0, CK, CSUB):
        ok = k0 + s + tl.arange(0, CSUB)
        k_ok = ok < K
        if GEMV:
            xv = tl.load(x_ptr + ok, mask=k_ok, other=0.0)
            u = _gate(xv, t_ptr, t_val, s_ptr, ok, offs_m, k_ok, k_ok, stride_tm, stride_tk,
                      THR_MODE, HAS_SCALE, GEMV) & k_ok
        else:
            full = m_ok[:, None] & k_ok[None, :]
            xv = tl.load(x_ptr + offs_m[:, None] * stride_xm + ok[None, :], mask=full, other=0.0)
            g = _gate(xv, t_ptr, t_val, s_ptr, ok, offs_m, k_ok, full, stride_tm, stride_tk,
                      THR_MODE, HAS_SCALE, GEMV) & full
            u = tl.max(g.to(tl.int32), axis=0) > 0
        ui = u.to(tl.int32)
        pos = cnt + tl.cumsum(ui, axis=0) - 1
        tl.store(scr + pos, ok, mask=u)
        cnt = cnt + tl.sum(ui, axis=0)
    return cnt


@triton.jit
def _compact_kernel(x_ptr, t_ptr, t_val, s_ptr, scr_ptr, cnt_ptr, M, K, stride_xm, stride_tm, stride_tk,
                    BM: tl.constexpr, CK: tl.constexpr, CSUB: tl.constexpr, THR_MODE: tl.constexpr,
                    HAS_SCALE: tl.constexpr, GEMV: tl.constexpr):
    """Stand-alone compaction (used when FUSED=False): one program per (chunk, m-block)."""
    pid_c = tl.program_id(0)
    pid_m = tl.program_id(1)
    n_c = tl.num_programs(0)
    offs_m = pid_m * BM + tl.arange(0, BM)
    m_ok = offs_m < M
    slot = pid_m * n_c + pid_c
    cnt = _compact(x_ptr, t_ptr, t_val, s_ptr, scr_ptr + slot.to(tl.int64) * CK, pid_c * CK, K, offs_m, m_ok,
                   stride_xm, stride_tm, stride_tk, CK, CSUB, THR_MODE, HAS_SCALE, GEMV)
    tl.store(cnt_ptr + slot, cnt)


@triton.jit
def _gated_mm_kernel(x_ptr, wt_ptr, t_ptr, t_val, s_ptr, b_ptr, part_ptr, y_ptr, scr_ptr, cnt_ptr, ctr_ptr,
                     M, N, K, stride_xm, stride_tm, stride_tk, dense_cut,
                     BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, CK: tl.constexpr,
                     CSUB: tl.constexpr, THR_MODE: tl.constexpr, HAS_SCALE: tl.constexpr,
                     HAS_BIAS: tl.constexpr, GEMV: tl.constexpr, FUSED: tl.constexpr,
                     DIRECT: tl.constexpr, DOT_F32: tl.constexpr, FIX_BF16: tl.constexpr,
                     PIPE: tl.constexpr, NS: tl.constexpr, LAST_REDUCE: tl.constexpr):
    pid_n = tl.program_id(0)
    pid_c = tl.program_id(1)
    pid_m = tl.program_id(2)
    n_nb = tl.num_programs(0)
    n_c = tl.num_programs(1)
    k0 = pid_c * CK
    k_len = tl.minimum(K - k0, CK)
    offs_m = pid_m * BM + tl.arange(0, BM)
    m_ok = offs_m < M
    if GEMV:
        x_row = x_ptr + pid_m.to(tl.int64) * stride_xm
    else:
        x_row = x_ptr

    # 1. gate + compact this chunk's kept channels (union over the rows of this m-block)
    if FUSED:
        scr = scr_ptr + ((pid_m * n_c + pid_c) * n_nb + pid_n).to(tl.int64) * CK
        cnt = _compact(x_row, t_ptr, t_val, s_ptr, scr, k0, K, offs_m, m_ok, stride_xm, stride_tm, stride_tk,
                       CK, CSUB, THR_MODE, HAS_SCALE, GEMV)
        tl.debug_barrier()  # scratch written by other threads of this program
    else:
        scr = scr_ptr + (pid_m * n_c + pid_c).to(tl.int64) * CK
        cnt = tl.load(cnt_ptr + pid_m * n_c + pid_c)
    dense = cnt.to(tl.float32) > dense_cut * k_len.to(tl.float32)
    nk = tl.where(dense, k_len, cnt)
    nk_idx = tl.where(dense, 0, nk)    # rows [0, nk_idx) come from the compacted list
    nk_gate = tl.where(dense, nk, 0)   # rows [0, nk_gate) still need gating (dense chunk)

    # 2. stream the kept weight rows
    offs_n = pid_n * BN + tl.arange(0, BN)
    n_ok = offs_n < N
    cols = tl.arange(0, BN)
    w_blk = wt_ptr + pid_n * BN  # this program's column block
    if GEMV:
        acc2 = tl.zeros([BK, BN], dtype=tl.float32)
        if PIPE == 1:
            # manual software pipeline: weight rows one block ahead (held in registers) and their
            # indices two blocks ahead, so the index -> weight-row load chain never stalls the stream
            r_a = _rows(scr, k0, 0, nk_idx, dense, BK)
            w_a, x_a = _fetch(w_blk, x_row, r_a, 0, nk, cols, n_ok, N, BK)
            r_b = _rows(scr, k0, BK, nk_idx, dense, BK)
            for j in range(0, nk, BK):
                # the index load first, then the weight rows: issued in this order, 17920x5120 at 50% takes 39.5 us
                # on an H100 instead of 51 us (bf16; the other order since dc0865f, found by bisecting the bench)
                r_c = _rows(scr, k0, j + 2 * BK, nk_idx, dense, BK)
                w_b, x_b = _fetch(w_blk, x_row, r_b, j + BK, nk, cols, n_ok, N, BK)
                acc2 = _consume(acc2, w_a, x_a, r_a, j, nk, nk_gate, t_ptr, t_val, s_ptr, offs_m, stride_tm,
                                stride_tk, BK, THR_MODE, HAS_SCALE)
                w_a, x_a, r_a = w_b, x_b, r_b
                r_b = r_c
        else:
            for j in tl.range(0, nk, BK, num_stages=NS):
                rows = _rows(scr, k0, j, nk_idx, dense, BK)
                w, xv = _fetch(w_blk, x_row, rows, j, nk, cols, n_ok, N, BK)
                acc2 = _consume(acc2, w, xv, rows, j, nk, nk_gate, t_ptr, t_val, s_ptr, offs_m, stride_tm,
                                stride_tk, BK, THR_MODE, HAS_SCALE)
        acc = tl.sum(acc2, axis=0)
    else:
        acc = tl.zeros([BM, BN], dtype=tl.float32)
        for j in tl.range(0, nk, BK, num_stages=NS):
            oj = j + tl.arange(0, BK)
            j_ok = oj < nk
            rows = _rows(scr, k0, j, nk_idx, dense, BK)
            w = tl.load(w_blk + rows[:, None].to(tl.int64) * N + cols[None, :],
                        mask=j_ok[:, None] & n_ok[None, :], other=0.0)
            full = m_ok[:, None] & j_ok[None, :]
            xv = tl.load(x_ptr + offs_m[:, None] * stride_xm + rows[None, :], mask=full, other=0.0)
            keep = _gate(xv, t_ptr, t_val, s_ptr, rows, offs_m, j_ok, full, stride_tm, stride_tk,
                         THR_MODE, HAS_SCALE, GEMV)
            xv = tl.where(keep, xv, 0.0)  # each row's own mask
            if DOT_F32:  # the Triton interpreter mis-computes bf16 tl.dot; exact fp32 there
                acc += tl.dot(xv.to(tl.float32), w.to(tl.float32), input_precision="ieee")
            else:
                acc += tl.dot(xv, w)

    # 3. output: direct (single chunk), or fp32 partial (+ reduction by the last program)
    if GEMV:
        _epilogue(acc[None, :], pid_m + tl.arange(0, 1), offs_n, n_ok, M, N, pid_c, n_c, pid_m * n_nb + pid_n,
                  b_ptr, part_ptr, y_ptr, ctr_ptr, 1, BN, HAS_BIAS, DIRECT, LAST_REDUCE, FIX_BF16)
    else:
        _epilogue(acc, offs_m, offs_n, n_ok, M, N, pid_c, n_c, pid_m * n_nb + pid_n,
                  b_ptr, part_ptr, y_ptr, ctr_ptr, BM, BN, HAS_BIAS, DIRECT, LAST_REDUCE, FIX_BF16)


@triton.jit
def _reduce_kernel(part_ptr, b_ptr, y_ptr, MN, N, C, HAS_BIAS: tl.constexpr,
                   BC: tl.constexpr, BLOCK: tl.constexpr, FIX_BF16: tl.constexpr):
    """y = cast(sum_c part[c] + bias), fixed summation order."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < MN
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for c0 in range(0, C, BC):
        oc = c0 + tl.arange(0, BC)
        p = tl.load(part_ptr + oc[:, None].to(tl.int64) * MN + offs[None, :],
                    mask=(oc < C)[:, None] & ok[None, :], other=0.0)
        acc += tl.sum(p, axis=0)
    if HAS_BIAS:
        acc += tl.load(b_ptr + offs % N, mask=ok, other=0.0).to(tl.float32)
    tl.store(y_ptr + offs, _to_out(acc, y_ptr, FIX_BF16), mask=ok)


# --------------------------------------------------------------------------- launcher


@dataclass(frozen=True)
class GatedConfig:
    BN: int = 256          # output columns per program
    BK: int = 32           # kept rows per inner step
    CK: int = 256          # input channels per chunk (split-K granularity)
    BM: int = 1            # rows per program (1 = GEMV path)
    num_warps: int = 4
    fused: bool = True     # compaction inside the GEMV kernel (else a separate kernel)
    pipe: int = 1          # GEMV loop: 1 = manual prefetch pipeline, 0 = plain / tl.range stages
    stages: int = 1        # num_stages for tl.range loops (pipe 0, and the M > 1 tl.dot loop)
    last_reduce: bool = True  # split-K sum by the last program of each tile (no 2nd kernel)


def _empty(shape, device, dtype) -> torch.Tensor:
    """Allocation hook for the kernel's buffers (tests poison them through this)."""
    return torch.empty(shape, device=device, dtype=dtype)


_COUNTERS: dict = {}
_CSUB_MAX = 1024  # channels gated per compaction step (tests lower it to hit the multi-step path)


def _counters(device: torch.device, n: int) -> torch.Tensor | None:
    """Persistent zeroed tile counters for LAST_REDUCE (each launch leaves them at zero).

    Allocated outside graph capture only (None while capturing with no buffer yet: the
    launcher then uses the separate reduction kernel).  Launches that use the counters must
    be stream-ordered (not run concurrently on two streams)."""
    key = (device.type, device.index)
    buf = _COUNTERS.get(key)
    if buf is None or buf.numel() < n:
        if device.type == "cuda" and torch.cuda.is_current_stream_capturing():
            return None
        buf = torch.zeros(max(n, 1 << 16), device=device, dtype=torch.int32)
        _COUNTERS[key] = buf
    return buf


def _pow2_floor(v: int) -> int:
    return 1 << (max(int(v), 1).bit_length() - 1)


@functools.lru_cache(maxsize=16)
def _num_sms(dev_index: int) -> int:
    return torch.cuda.get_device_properties(dev_index).multi_processor_count


_TUNED: dict = {}
TUNED_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tuned_configs.json")


def m_bucket(M: int) -> int:
    return 1 if M == 1 else (16 if M <= 16 else 64)


def tuned_key(M: int, N: int, K: int) -> str:
    """Key of the tuned-config table: '<M bucket>:<out>x<in>' (PyTorch weight layout)."""
    return f"{m_bucket(M)}:{N}x{K}"


def load_tuned(path: str = TUNED_PATH) -> int:
    """Merge a JSON table {key: GatedConfig fields} (written by bench_kernels --sweep)."""
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        table = json.load(f)
    fields = set(GatedConfig.__dataclass_fields__)
    _TUNED.update({k: GatedConfig(**{a: b for a, b in v.items() if a in fields}) for k, v in table.items()})
    return len(table)


def config_dict(cfg: GatedConfig) -> dict:
    return asdict(cfg)


def pick_config(M: int, N: int, K: int, device: torch.device) -> GatedConfig:
    """Tuned configuration for (M bucket, out, in) if known, else a heuristic."""
    hit = _TUNED.get(tuned_key(M, N, K))
    if hit is not None:
        return hit
    sms = _num_sms(device.index if device.index is not None else torch.cuda.current_device()) \
        if device.type == "cuda" else 8
    if M == 1:
        cfg = GatedConfig(BM=1, BN=128, BK=32, num_warps=4)
        target = 6 * sms
    elif M <= 16:
        cfg = GatedConfig(BM=16, BN=128, BK=64, num_warps=4, fused=False, stages=3)
        target = 4 * sms
    else:
        cfg = GatedConfig(BM=64, BN=128, BK=32, num_warps=8, fused=False, stages=3)
        target = 4 * sms
    n_nb = triton.cdiv(N, cfg.BN) * triton.cdiv(M, cfg.BM)
    c_target = max(1, triton.cdiv(target, n_nb))
    CK = min(1024, max(64, _pow2_floor(max(1, K // c_target))))
    return replace(cfg, CK=CK)


load_tuned()


def _threshold_args(threshold, M: int, K: int, lead, device):
    """-> (mode, t_tensor, t_val, stride_tm, stride_tk)."""
    if not torch.is_tensor(threshold):
        return 0, None, float(threshold), 0, 0
    t = threshold
    if t.device != device:
        t = t.to(device)
    if t.numel() == 1:
        return 1, t.reshape(1), 0.0, 0, 0
    if t.dim() == 1 and t.shape[0] == K:
        return 2, t, 0.0, 0, t.stride(0)
    t = torch.broadcast_to(t, (*lead, K)).reshape(M, K)
    if t.stride(0) == 0:
        return 2, t, 0.0, 0, t.stride(1)
    return 3, t, 0.0, t.stride(0), t.stride(1)


def gated_linear(x: torch.Tensor, w_t: torch.Tensor, threshold, bias: torch.Tensor | None = None,
                 scale: torch.Tensor | None = None, *, dense_cutoff: float = 0.9,
                 config: GatedConfig | None = None, out: torch.Tensor | None = None,
                 reduce: bool = True) -> torch.Tensor:
    """``y = (x * (|x| * scale > threshold)) @ w_t + bias`` with the Triton kernel.

    x: [..., in] (bf16/fp16); w_t: [in, out] contiguous, same dtype; threshold: float,
    1-element tensor, per-channel [in] tensor, or anything broadcastable to x's shape
    (e.g. per-row [..., 1]); scale: optional per-channel [in] tensor; bias: optional [out].
    dense_cutoff: a chunk whose union density exceeds this is read densely (>= 1: never).
    out: optional contiguous output buffer with M * out elements.
    reduce=False: skip the split-K reduction and return the fp32 partials [C, M, out]
    (their sum over dim 0 is the result without bias) so a following elementwise op can
    fuse the sum; bias must then be None.
    Returns [..., out] in x's dtype.  No host synchronisation (CUDA-graph safe).
    """
    K, N = w_t.shape
    if not reduce and bias is not None:
        raise ValueError("reduce=False returns bias-free partials; pass bias=None")
    if x.shape[-1] != K:
        raise ValueError(f"x has {x.shape[-1]} input channels, w_t expects {K}")
    if x.dtype != w_t.dtype:
        raise TypeError(f"dtype mismatch: x {x.dtype} vs w_t {w_t.dtype}")
    if not w_t.is_contiguous():
        raise ValueError("w_t must be contiguous [in, out]")
    lead = x.shape[:-1]
    x2 = x.reshape(-1, K)
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    M = x2.shape[0]
    if out is not None:
        if out.dtype != x.dtype or out.numel() != M * N or not out.is_contiguous():
            raise ValueError("out must be contiguous, x's dtype, with M * out elements")
        y = out.view(M, N)
    else:
        y = _empty((M, N), x.device, x.dtype)
    if M == 0 or N == 0:
        return y.view(*lead, N) if reduce else y.new_zeros((1, M, N), dtype=torch.float32)
    cfg = config or pick_config(M, N, K, x.device)
    if M > 1 and cfg.BM == 1:
        cfg = replace(cfg, BM=16)
    if M == 1 and cfg.BM != 1:
        cfg = replace(cfg, BM=1)
    gemv = cfg.BM == 1
    mode, t, t_val, s_tm, s_tk = _threshold_args(threshold, M, K, lead, x.device)
    t_arg = t if t is not None else x2
    s_arg = scale if scale is not None else x2
    b_arg = bias if bias is not None else x2
    if cfg.CK > K:  # one chunk: no larger than K (the compaction prologue is unrolled per 1024 channels)
        cfg = replace(cfg, CK=max(16, triton.next_power_of_2(K)))
    CK = cfg.CK
    C = triton.cdiv(K, CK)
    n_nb = triton.cdiv(N, cfg.BN)
    n_mb = M if gemv else triton.cdiv(M, cfg.BM)
    csub = min(CK, _CSUB_MAX if gemv else max(16, 4 * _CSUB_MAX // cfg.BM))
    direct = C == 1 and reduce
    part = y if direct else _empty((C, M, N), x.device, torch.float32)
    if cfg.fused:
        scr = _empty((n_mb * C * n_nb * CK,), x.device, torch.int32)
        cnt = scr
    else:
        scr = _empty((n_mb * C * CK,), x.device, torch.int32)
        cnt = _empty((n_mb * C,), x.device, torch.int32)
        _compact_kernel[(C, n_mb)](x2, t_arg, t_val, s_arg, scr, cnt, M, K, x2.stride(0), s_tm, s_tk,
                                   BM=cfg.BM, CK=CK, CSUB=csub, THR_MODE=mode, HAS_SCALE=scale is not None,
                                   GEMV=gemv, num_warps=4)
    # Triton-interpreter workarounds (bf16 tl.dot and fp32->bf16 rounding); no effect on GPU
    dot_f32 = fix_bf16 = isinstance(_gated_mm_kernel, InterpretedFunction) and x.dtype == torch.bfloat16
    ctr = None
    if cfg.last_reduce and reduce and not direct:
        ctr = _counters(x.device, n_nb * n_mb)
    last = ctr is not None
    _gated_mm_kernel[(n_nb, C, n_mb)](
        x2, w_t, t_arg, t_val, s_arg, b_arg, part, y, scr, cnt, ctr if last else scr,
        M, N, K, x2.stride(0), s_tm, s_tk, float(dense_cutoff),
        BM=cfg.BM, BN=cfg.BN, BK=cfg.BK, CK=CK, CSUB=csub, THR_MODE=mode,
        HAS_SCALE=scale is not None, HAS_BIAS=bias is not None, GEMV=gemv, FUSED=cfg.fused,
        DIRECT=direct, DOT_F32=dot_f32, FIX_BF16=fix_bf16, PIPE=cfg.pipe if gemv else 0,
        NS=cfg.stages, LAST_REDUCE=last, num_warps=cfg.num_warps)
    if not reduce:
        return part
    if not direct and not last:
        MN = M * N
        BC = min(64, triton.next_power_of_2(C))
        BLOCK = max(32, min(1024, 4096 // BC))
        _reduce_kernel[(triton.cdiv(MN, BLOCK),)](part, b_arg, y, MN, N, C, HAS_BIAS=bias is not None,
                                                  BC=BC, BLOCK=BLOCK, FIX_BF16=fix_bf16, num_warps=4)
    return y.view(*lead, N)


__all__ = ["GatedConfig", "gated_linear", "pick_config"]
