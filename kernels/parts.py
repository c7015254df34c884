"""Triton pieces shared by the gated kernels: the gate, the output cast, the split-K epilogue."""
import triton
import triton.language as tl


@triton.jit
def _to_out(v, ptr, FIX_BF16: tl.constexpr):
    """Cast fp32 -> ``ptr``'s dtype (an output; or a score rounded to the activations' dtype, ``kernels.mask``).
    The Triton interpreter truncates fp32 -> bf16 (the GPU
    rounds to nearest even); under the interpreter round explicitly so tests see GPU numerics."""
    if FIX_BF16:
        b = v.to(tl.int32, bitcast=True)
        b = (b + 0x7FFF + ((b >> 16) & 1)) & -65536
        v = b.to(tl.float32, bitcast=True)
    return v.to(ptr.dtype.element_ty)


@triton.jit
def _gate(xv, t_ptr, t_val, s_ptr, rows, offs_m, row_ok, full_ok, stride_tm, stride_tk,
          THR_MODE: tl.constexpr, HAS_SCALE: tl.constexpr, GEMV: tl.constexpr):
    """Boolean keep-mask for activation values ``xv`` at input channels ``rows``."""
    a = tl.abs(xv.to(tl.float32))
    if HAS_SCALE:
        sc = tl.load(s_ptr + rows, mask=row_ok, other=0.0).to(tl.float32)
        if GEMV:
            a = a * sc
        else:
            a = a * sc[None, :]
    if THR_MODE == 0:      # Python float
        keep = a > t_val
    elif THR_MODE == 1:    # one value in device memory
        keep = a > tl.load(t_ptr).to(tl.float32)
    elif THR_MODE == 2:    # per input channel
        t = tl.load(t_ptr + rows * stride_tk, mask=row_ok, other=0.0).to(tl.float32)
        if GEMV:
            keep = a > t
        else:
            keep = a > t[None, :]
    else:                  # per (row, channel)
        if GEMV:
            t = tl.load(t_ptr + rows * stride_tk, mask=row_ok, other=0.0).to(tl.float32)
        else:
            t = tl.load(t_ptr + offs_m[:, None] * stride_tm + rows[None, :] * stride_tk,
                        mask=full_ok, other=0.0).to(tl.float32)
        keep = a > t
    return keep



@triton.jit
def _epilogue(acc, om, offs_n, n_ok, M, N, pid_c, n_c, tile, b_ptr, part_ptr, y_ptr, ctr_ptr,
              ROWS: tl.constexpr, BN: tl.constexpr, HAS_BIAS: tl.constexpr, DIRECT: tl.constexpr,
              LAST_REDUCE: tl.constexpr, FIX_BF16: tl.constexpr):
    """Write the [ROWS, BN] fp32 tile ``acc`` of output rows ``om``: directly (single chunk), or as
    chunk ``pid_c``'s fp32 partial, summed over the ``n_c`` chunks by the last program of ``tile``."""
    out_ok = (om < M)[:, None] & n_ok[None, :]
    y_off = om[:, None].to(tl.int64) * N + offs_n[None, :]
    if DIRECT:
        if HAS_BIAS:
            acc += tl.load(b_ptr + offs_n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
        tl.store(y_ptr + y_off, _to_out(acc, y_ptr, FIX_BF16), mask=out_ok)
    else:
        MN = M * N
        tl.store(part_ptr + pid_c.to(tl.int64) * MN + y_off, acc, mask=out_ok)
        if LAST_REDUCE:
            # split-K "last program reduces": every program of this output tile takes a ticket
            # after its partial is stored; the one that draws the last ticket sums all C
            # partials in chunk order (deterministic) and resets the counter for the next call.
            tl.debug_barrier()
            ticket = tl.atomic_add(ctr_ptr + tile, 1, sem="acq_rel")
            if ticket == n_c - 1:
                tl.debug_barrier()
                tot = tl.zeros([ROWS, BN], dtype=tl.float32)
                for c in range(0, n_c):
                    tot += tl.load(part_ptr + c * MN + y_off, mask=out_ok, other=0.0, cache_modifier=".cg")
                if HAS_BIAS:
                    tot += tl.load(b_ptr + offs_n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
                tl.store(y_ptr + y_off, _to_out(tot, y_ptr, FIX_BF16), mask=out_ok)
                tl.atomic_xchg(ctr_ptr + tile, 0)
