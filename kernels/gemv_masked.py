"""Single-row gated GEMV by predicated loads: ``y = (x * mask) @ w_t`` with no index list.

Each program (n-block, k-chunk) walks its chunk of input channels in blocks of BK. For a block it
loads x, evaluates the gate, and loads the [BK, BN] tile of ``w_t`` with the row mask as the load
predicate: a dropped channel's row segment is never requested from memory, so only kept weight
bytes move. The addresses are affine in the loop counter, so nothing waits on an index list (the
compaction kernel's prologue: gate, prefix sum, scratch round trip); the cost of a dropped row is a
predicated-off instruction instead of a memory transaction. Split-K partials are summed by the last
program of each output tile (``parts._epilogue``).

PIPE 0: Triton's software pipeliner (``tl.range(num_stages=NS)``).
PIPE 1: a manual register pipeline: the gate and the weight loads of block j+1 are issued before
        block j is accumulated, so one tile is always in flight behind the one being consumed.
"""
import triton
import triton.language as tl

from .parts import _epilogue, _gate


@triton.jit
def _tile(x_ptr, w_blk, t_ptr, t_val, s_ptr, rows, k_end, cols, n_ok, stride_wk, stride_tk,
          THR_MODE: tl.constexpr, HAS_SCALE: tl.constexpr):
    """Gated activations [BK] (fp32, zero where dropped) and the predicated weight tile [BK, BN]."""
    r_ok = rows < k_end
    xv = tl.load(x_ptr + rows, mask=r_ok, other=0.0)
    keep = _gate(xv, t_ptr, t_val, s_ptr, rows, rows, r_ok, r_ok, 0, stride_tk, THR_MODE, HAS_SCALE, True) & r_ok
    w = tl.load(w_blk + rows[:, None].to(tl.int64) * stride_wk + cols[None, :],
                mask=keep[:, None] & n_ok[None, :], other=0.0)
    return tl.where(keep, xv.to(tl.float32), 0.0), w


@triton.jit
def _gemv_masked_kernel(x_ptr, wt_ptr, t_ptr, t_val, s_ptr, b_ptr, part_ptr, y_ptr, ctr_ptr,
                        N, K, stride_tk, stride_wb, stride_wk,
                        BN: tl.constexpr, BK: tl.constexpr, CK: tl.constexpr, THR_MODE: tl.constexpr,
                        HAS_SCALE: tl.constexpr, HAS_BIAS: tl.constexpr, DIRECT: tl.constexpr,
                        LAST_REDUCE: tl.constexpr, PIPE: tl.constexpr, NS: tl.constexpr,
                        FIX_BF16: tl.constexpr):
    pid_n = tl.program_id(0)
    pid_c = tl.program_id(1)
    n_c = tl.num_programs(1)
    k0 = pid_c * CK
    k_end = tl.minimum(k0 + CK, K)
    offs_n = pid_n * BN + tl.arange(0, BN)
    n_ok = offs_n < N
    cols = tl.arange(0, BN)
    w_blk = wt_ptr + pid_n.to(tl.int64) * stride_wb  # this program's column block (row-major or blocked)
    acc2 = tl.zeros([BK, BN], dtype=tl.float32)
    if PIPE == 0:
        for j in tl.range(k0, k_end, BK, num_stages=NS):
            xg, w = _tile(x_ptr, w_blk, t_ptr, t_val, s_ptr, j + tl.arange(0, BK), k_end, cols, n_ok, stride_wk,
                          stride_tk, THR_MODE, HAS_SCALE)
            acc2 += w.to(tl.float32) * xg[:, None]
    else:
        x_cur, w_cur = _tile(x_ptr, w_blk, t_ptr, t_val, s_ptr, k0 + tl.arange(0, BK), k_end, cols, n_ok,
                             stride_wk, stride_tk, THR_MODE, HAS_SCALE)
        for j in range(k0, k_end, BK):
            x_nxt, w_nxt = _tile(x_ptr, w_blk, t_ptr, t_val, s_ptr, j + BK + tl.arange(0, BK), k_end, cols,
                                 n_ok, stride_wk, stride_tk, THR_MODE, HAS_SCALE)
            acc2 += w_cur.to(tl.float32) * x_cur[:, None]
            x_cur = x_nxt
            w_cur = w_nxt
    acc = tl.sum(acc2, axis=0)
    _epilogue(acc[None, :], tl.arange(0, 1), offs_n, n_ok, 1, N, pid_c, n_c, pid_n, b_ptr, part_ptr, y_ptr,
              ctr_ptr, 1, BN, HAS_BIAS, DIRECT, LAST_REDUCE, FIX_BF16)
