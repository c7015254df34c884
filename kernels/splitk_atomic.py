"""Single-row gated GEMV with split-K partial sums added atomically (``y = (x * mask) @ w_t + bias``, one row).

Each program owns one tile of ``BK`` input channels x ``BN`` output columns of ``w_t`` ([in, out], a channel is a
contiguous row): it gates its channels (``kernels.parts._gate``: ``|x| * scale > threshold``), loads the tile with
the rows of dropped channels masked off (never read), reduces over its rows in fp32 and adds the ``BN`` sums into an
fp32 buffer with ``atomic_add``; the buffer is then cast to the output dtype (and the bias added). One pass over the
kept weights, no index list, no partials buffer.

**Not deterministic**: the order in which the programs' sums reach the buffer varies from run to run, so the last
bits of the result can differ between identical calls (fp32 accumulation keeps the error at dense ``F.linear``'s
level). It is an explicit option (``kernels.gated_gemv.gated_linear`` stays the deterministic path); tests that need
bitwise repeatability must not use it.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .gated_gemv import _threshold_args
from .parts import _gate


@triton.jit
def _splitk_atomic_kernel(x_ptr, wt_ptr, t_ptr, t_val, s_ptr, acc_ptr, N, K, stride_tk,
                          THR_MODE: tl.constexpr, HAS_SCALE: tl.constexpr, BK: tl.constexpr, BN: tl.constexpr):
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    rows = pid_k * BK + tl.arange(0, BK)
    cols = pid_n * BN + tl.arange(0, BN)
    r_ok = rows < K
    n_ok = cols < N
    xv = tl.load(x_ptr + rows, mask=r_ok, other=0.0)
    keep = r_ok & _gate(xv, t_ptr, t_val, s_ptr, rows, rows, r_ok, r_ok, 0, stride_tk, THR_MODE, HAS_SCALE, True)
    w = tl.load(wt_ptr + rows[:, None].to(tl.int64) * N + cols[None, :], mask=keep[:, None] & n_ok[None, :],
                other=0.0)
    part = tl.sum(w.to(tl.float32) * tl.where(keep, xv.to(tl.float32), 0.0)[:, None], axis=0)
    tl.atomic_add(acc_ptr + cols, part, mask=n_ok)


def gated_linear_atomic(x: torch.Tensor, w_t: torch.Tensor, threshold, bias: torch.Tensor | None = None,
                        scale: torch.Tensor | None = None, *, block_k: int = 64, block_n: int = 128,
                        num_warps: int = 4) -> torch.Tensor:
    """``F.linear(x * (|x| * scale > threshold), w_t.T, bias)`` for a single row ``x`` ([..., in] with one row);
    ``threshold``: as ``kernels.gated_gemv.gated_linear`` takes it (a number, a 1-element tensor, per channel, or
    broadcastable to ``x``). Non-deterministic (see the module)."""
    K, N = w_t.shape
    lead = x.shape[:-1]
    x1 = x.reshape(-1, K)
    if x1.shape[0] != 1:
        raise ValueError(f"gated_linear_atomic takes one row, got {x1.shape[0]}")
    if x.dtype != w_t.dtype or not w_t.is_contiguous():
        raise ValueError("w_t must be contiguous [in, out] in x's dtype")
    x1 = x1.contiguous()
    mode, t, t_val, _, stride_tk = _threshold_args(threshold, 1, K, lead, x.device)  # one row: no row stride
    t_arg = t if t is not None else x1
    acc = torch.zeros(N, device=x.device, dtype=torch.float32)
    _splitk_atomic_kernel[(triton.cdiv(N, block_n), triton.cdiv(K, block_k))](
        x1, w_t, t_arg, t_val, scale if scale is not None else x1, acc, N, K, stride_tk,
        THR_MODE=mode, HAS_SCALE=scale is not None, BK=block_k, BN=block_n, num_warps=num_warps)
    if bias is not None:
        acc += bias.float()
    return acc.to(x.dtype).view(*lead, N)


__all__ = ["gated_linear_atomic"]
