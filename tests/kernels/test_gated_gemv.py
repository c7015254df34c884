"""Correctness of kernels.gated_gemv.gated_linear against a float64 reference.

Runs on CPU through the Triton interpreter (conftest sets TRITON_INTERPRET=1).
bf16: the interpreter computes tl.dot on bf16 operands wrongly, so under the
interpreter the M > 1 path upcasts to an exact fp32 dot for bf16 (DOT_F32);
fp16 exercises the low-precision tl.dot path itself.
"""
import pytest
import torch

from kernel_testlib import dense_err, rand_x, ref_mask, ref_out, rel_err
from kernels.gated_gemv import GatedConfig, gated_linear

DTYPES = [torch.float16, torch.bfloat16]
TOL = {torch.float16: 2e-3, torch.bfloat16: 1.5e-2}
SMALL = dict(BN=64, BK=16, CK=64)  # several chunks / n-blocks even on small shapes


def _cfg(M, **kw):
    d = dict(SMALL, BM=1 if M == 1 else 16)
    d.update(kw)
    return GatedConfig(**d)


def _thr(kind, M, K, gen, dev, lead=None):
    if kind == "float":
        return 0.6
    if kind == "0d":
        return torch.tensor(0.6, device=dev)
    if kind == "channel":
        return (torch.rand(K, generator=gen) * 1.4).to(dev)
    if kind == "row":
        return (torch.rand(M, 1, generator=gen) * 1.4).to(dev)
    if kind == "full":
        return (torch.rand(M, K, generator=gen) * 1.4).to(dev)
    raise ValueError(kind)


def _check(y, x, w_t, t, bias=None, scale=None):
    ref = ref_out(x, w_t, t, bias, scale)
    err = rel_err(y, ref)
    derr = dense_err(x, w_t, t, bias, scale)
    assert err <= 1.5 * derr + 1e-6, f"kernel err {err:.3e} > 1.5 x dense err {derr:.3e}"
    assert err < TOL[x.dtype]
    return err


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,K,N", [(1, 300, 77), (3, 300, 77), (5, 256, 128), (1, 512, 96), (2, 64, 33)])
@pytest.mark.parametrize("kind", ["float", "0d", "channel", "row"])
def test_matches_float64(dev, poison, dtype, M, K, N, kind):
    gen = torch.Generator().manual_seed(M * 1000 + K + N)
    x = rand_x(M, K, dtype, dev, gen)
    w_t = torch.randn(K, N, generator=gen).to(dtype).to(dev)
    t = _thr(kind, M, K, gen, dev)
    keep = ref_mask(x, t).float().mean().item()
    assert 0.15 < keep < 0.85  # the gate really removes and keeps channels
    y = gated_linear(x, w_t, t, config=_cfg(M))
    assert y.shape == (M, N) and y.dtype == dtype
    _check(y, x, w_t, t)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M", [1, 3])
def test_default_config_and_bias(dev, poison, dtype, M):
    gen = torch.Generator().manual_seed(7 + M)
    K, N = 300, 77
    x = rand_x(M, K, dtype, dev, gen)
    w_t = torch.randn(K, N, generator=gen).to(dtype).to(dev)
    b = torch.randn(N, generator=gen).to(dtype).to(dev)
    y = gated_linear(x, w_t, 0.5, b)
    _check(y, x, w_t, 0.5, b)
    # bias really added: dropping it changes the result
    assert rel_err(gated_linear(x, w_t, 0.5), ref_out(x, w_t, 0.5, b)) > 0.05


@pytest.mark.parametrize("M", [1, 3])
@pytest.mark.parametrize("fused", [True, False])
def test_masked_rows_never_read(dev, poison, M, fused):
    """Weight rows of channels no row keeps are NaN: any read of them poisons the output."""
    gen = torch.Generator().manual_seed(11 + M)
    K, N = 300, 77
    x = rand_x(M, K, torch.float16, dev, gen)
    w_t = torch.randn(K, N, generator=gen).to(torch.float16)
    t = 0.8
    union = ref_mask(x, t).any(0)
    assert (~union).sum() > 10
    w_nan = w_t.clone()
    w_nan[~union] = float("nan")
    y = gated_linear(x, w_nan.to(dev), t, config=_cfg(M, fused=fused), dense_cutoff=1.0)
    _check(y, x, w_t.to(dev), t)


@pytest.mark.parametrize("M", [1, 5])
@pytest.mark.parametrize("cutoff", [0.0, 0.5, 1.0])
def test_dense_chunks_still_gate(dev, poison, M, cutoff):
    """Chunks read densely (cutoff 0: all of them) must still apply each row's own mask:
    masked channels carry huge weights that would dominate the output."""
    gen = torch.Generator().manual_seed(21 + M)
    K, N = 300, 77
    x = rand_x(M, K, torch.float16, dev, gen)
    w_t = torch.randn(K, N, generator=gen).to(torch.float16)
    t = 0.7
    m = ref_mask(x, t)
    w_t[~m[0]] *= 300.0  # masked for row 0 (maybe kept by other rows)
    y = gated_linear(x, w_t.to(dev), t, config=_cfg(M), dense_cutoff=cutoff)
    _check(y, x, w_t.to(dev), t)


@pytest.mark.parametrize("dtype", DTYPES)
def test_per_row_masks_in_batch(dev, poison, dtype):
    """M = 3: channel 5 is kept only by row 0; its huge weight row must reach row 0 only."""
    gen = torch.Generator().manual_seed(3)
    M, K, N = 3, 300, 77
    x = rand_x(M, K, dtype, dev, gen).cpu()
    t = 0.6
    x[:, 5] = torch.tensor([3.0, 0.1, -0.2]).to(dtype)
    w_t = torch.randn(K, N, generator=gen).to(dtype)
    w_t[5] = 200.0
    x, w_t = x.to(dev), w_t.to(dev)
    y = gated_linear(x, w_t, t, config=_cfg(M))
    _check(y, x, w_t, t)
    assert y[0].float().abs().mean() > 300  # row 0 sees the 600-sized contribution
    assert y[1:].float().abs().max() < 150


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M", [1, 3])
def test_threshold_zero_is_dense(dev, poison, dtype, M):
    gen = torch.Generator().manual_seed(5 + M)
    K, N = 300, 77
    x = rand_x(M, K, dtype, dev, gen, zeros_frac=0.1)
    w_t = torch.randn(K, N, generator=gen).to(dtype).to(dev)
    for t in (0.0, torch.zeros((), device=dev)):
        y = gated_linear(x, w_t, t, config=_cfg(M))
        dense = x.double().cpu() @ w_t.double().cpu()
        assert rel_err(y, dense) < TOL[dtype]
        _check(y, x, w_t, t)


@pytest.mark.parametrize("M", [1, 3])
def test_scale_wina(dev, poison, M):
    """WINA gate |x| * c > t with c = column norms, and the equivalent per-channel t / c."""
    gen = torch.Generator().manual_seed(9)
    K, N = 300, 77
    x = rand_x(M, K, torch.bfloat16, dev, gen)
    w_t = (torch.randn(K, N, generator=gen) * (torch.rand(K, 1, generator=gen) * 3)).to(torch.bfloat16)
    w_t = w_t.to(dev)
    c = w_t.float().norm(dim=1)
    t = float(torch.quantile((x.float().abs() * c).cpu().flatten(), 0.5))
    y = gated_linear(x, w_t, t, scale=c, config=_cfg(M))
    _check(y, x, w_t, t, scale=c)
    # the scale matters: the plain-|x| gate at the same t selects other channels
    assert not torch.equal(ref_mask(x, t, c), ref_mask(x, t))
    y2 = gated_linear(x, w_t, t / c, config=_cfg(M))
    assert rel_err(y2, ref_out(x, w_t, t / c)) < TOL[torch.bfloat16]


def test_full_threshold_and_leading_dims(dev, poison):
    gen = torch.Generator().manual_seed(13)
    K, N = 128, 40
    x = rand_x(6, K, torch.float16, dev, gen)
    w_t = torch.randn(K, N, generator=gen).to(torch.float16).to(dev)
    t = _thr("full", 6, K, gen, dev)
    y = gated_linear(x.view(2, 3, K), w_t, t.view(2, 3, K), config=_cfg(6))
    assert y.shape == (2, 3, N)
    _check(y.reshape(6, N), x, w_t, t)


def test_out_buffer_fully_written(dev):
    gen = torch.Generator().manual_seed(17)
    K, N = 300, 77
    x = rand_x(2, K, torch.float16, dev, gen)
    w_t = torch.randn(K, N, generator=gen).to(torch.float16).to(dev)
    out = torch.full((2, N), float("nan"), dtype=torch.float16, device=dev)
    y = gated_linear(x, w_t, 0.4, out=out, config=_cfg(2))
    assert y.data_ptr() == out.data_ptr()
    _check(out, x, w_t, 0.4)


def test_single_chunk_direct_store(dev, poison):
    """K <= CK: one chunk, the kernel writes the output (and bias) directly."""
    gen = torch.Generator().manual_seed(19)
    K, N = 60, 77
    for M in (1, 3):
        x = rand_x(M, K, torch.float16, dev, gen)
        w_t = torch.randn(K, N, generator=gen).to(torch.float16).to(dev)
        b = torch.randn(N, generator=gen).to(torch.float16).to(dev)
        y = gated_linear(x, w_t, 0.5, b, config=_cfg(M, CK=64))
        _check(y, x, w_t, 0.5, b)


def test_rejects_bad_inputs(dev):
    x = torch.randn(2, 64).half().to(dev)
    with pytest.raises(ValueError):
        gated_linear(x, torch.randn(32, 8).half().to(dev), 0.1)
    with pytest.raises(TypeError):
        gated_linear(x, torch.randn(64, 8).to(dev), 0.1)


@pytest.mark.parametrize("M", [1, 3])
def test_partials_sum_to_result(dev, poison, M):
    """reduce=False: fp32 split-K partials [C, M, N] whose sum is the gated product."""
    gen = torch.Generator().manual_seed(23 + M)
    K, N = 300, 77
    x = rand_x(M, K, torch.bfloat16, dev, gen)
    w_t = torch.randn(K, N, generator=gen).to(torch.bfloat16).to(dev)
    p = gated_linear(x, w_t, 0.5, config=_cfg(M), reduce=False)
    assert p.dtype == torch.float32 and p.shape == (5, M, N)
    ref = ref_out(x, w_t, 0.5)
    assert rel_err(p.sum(0), ref) < 1e-5  # fp32 accumulation, no output rounding


@pytest.mark.parametrize("M", [1, 4])
def test_repeatable_bitwise(dev, poison, M):
    """Fixed-order reduction, no atomics: repeated calls agree bit for bit (a race would not)."""
    gen = torch.Generator().manual_seed(29 + M)
    K, N = 512, 256
    x = rand_x(M, K, torch.bfloat16, dev, gen)
    w_t = torch.randn(K, N, generator=gen).to(torch.bfloat16).to(dev)
    ys = [gated_linear(x, w_t, 0.5) for _ in range(3)]
    assert all(torch.equal(ys[0], y) for y in ys[1:])
    _check(ys[0], x, w_t, 0.5)


@pytest.mark.parametrize("M", [1, 3])
@pytest.mark.parametrize("variant", [
    dict(pipe=0), dict(pipe=1), dict(pipe=0, stages=2), dict(last_reduce=False),
    dict(fused=False), dict(fused=False, last_reduce=False, pipe=0), dict(BK=32, CK=128), dict(CK=1 << 20)])
def test_launch_variants(dev, poison, M, variant):
    """Every loop/reduction variant computes the same thing; tile counters are left at zero."""
    import kernels.gated_gemv as gg
    gen = torch.Generator().manual_seed(31 + M)
    K, N = 300, 77
    x = rand_x(M, K, torch.float16, dev, gen)
    w_t = torch.randn(K, N, generator=gen).half().to(dev)
    b = torch.randn(N, generator=gen).half().to(dev)
    t = (torch.rand(K, generator=gen) * 1.4).to(dev)
    for cutoff in (0.3, 1.0):
        y = gated_linear(x, w_t, t, b, config=_cfg(M, **variant), dense_cutoff=cutoff)
        _check(y, x, w_t, t, b)
    for buf in gg._COUNTERS.values():
        assert int(buf.abs().sum()) == 0


@pytest.mark.parametrize("M", [1, 3])
def test_multi_step_compaction(dev, poison, monkeypatch, M):
    """A chunk gated in several compaction steps (running offset into the index list)."""
    import kernels.gated_gemv as gg
    monkeypatch.setattr(gg, "_CSUB_MAX", 16)
    gen = torch.Generator().manual_seed(37 + M)
    K, N = 300, 77
    x = rand_x(M, K, torch.float16, dev, gen)
    w_t = torch.randn(K, N, generator=gen).half()
    t = 0.8
    w_nan = w_t.clone()
    w_nan[~ref_mask(x, t).any(0)] = float("nan")
    y = gated_linear(x, w_nan.to(dev), t, config=_cfg(M, CK=128), dense_cutoff=1.0)
    _check(y, x, w_t.to(dev), t)



def test_chunk_clamped_to_input_size(dev, monkeypatch):
    """A chunk larger than K is cut to the next power of two >= K (its compaction is unrolled per 1024 channels)."""
    import kernels.gated_gemv as gg
    shapes = []
    real = gg._empty

    def spy(shape, device, dtype):
        shapes.append((shape, dtype))
        return real(shape, device, dtype)

    monkeypatch.setattr(gg, "_empty", spy)
    gen = torch.Generator().manual_seed(43)
    K, N = 300, 77
    x = rand_x(1, K, torch.float16, dev, gen)
    w_t = torch.randn(K, N, generator=gen).half().to(dev)
    y = gated_linear(x, w_t, 0.5, config=_cfg(1, CK=1 << 20))
    _check(y, x, w_t, 0.5)
    scratch = [s for s, d in shapes if d == torch.int32]
    assert scratch == [(-(-N // 64) * 512,)]  # one chunk of 512 index slots per n-block
