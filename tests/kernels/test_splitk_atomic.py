"""``kernels.splitk_atomic.gated_linear_atomic``: the single-row gated GEMV whose split-K sums are added atomically
computes the gate's function at dense's error level, never reads a dropped channel's weight row, and adds the bias."""
import pytest
import torch

from kernel_testlib import dense_err, rand_x, ref_mask, ref_out, rel_err
from kernels.splitk_atomic import gated_linear_atomic

DTYPES = [torch.float16, torch.bfloat16]
SMALL = dict(block_k=32, block_n=32)  # several k-tiles and n-tiles on small shapes: the atomics really add up


def _threshold(kind, K, gen, dev):
    return {"float": 0.6, "0d": torch.tensor(0.6, device=dev),
            "channel": (torch.rand(K, generator=gen) * 1.4).to(dev)}[kind]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["float", "0d", "channel"])
@pytest.mark.parametrize("with_scale", [False, True])
def test_matches_float64_and_never_reads_dropped_rows(dev, dtype, kind, with_scale):
    gen = torch.Generator().manual_seed(41)
    K, N = 300, 77
    x = rand_x(1, K, dtype, dev, gen)
    w_t = torch.randn(K, N, generator=gen).to(dtype)
    t = _threshold(kind, K, gen, dev)
    c = (torch.rand(K, generator=gen) + 0.5).to(dev) if with_scale else None
    keep = ref_mask(x, t, c)[0]
    assert 10 < int((~keep).sum()) < K - 10
    w_nan = w_t.clone()
    w_nan[~keep] = float("nan")  # a read of any dropped row poisons the output
    y = gated_linear_atomic(x, w_nan.to(dev), t, scale=c, **SMALL)
    assert y.shape == (1, N) and y.dtype == dtype
    ref = ref_out(x, w_t.to(dev), t, None, c)
    assert rel_err(y, ref) <= 1.5 * dense_err(x, w_t.to(dev), t, None, c) + 1e-6


def test_bias_and_leading_dims(dev):
    gen = torch.Generator().manual_seed(43)
    K, N = 200, 50
    x = rand_x(1, K, torch.float16, dev, gen).view(1, 1, K)
    w_t = torch.randn(K, N, generator=gen).half().to(dev)
    b = torch.randn(N, generator=gen).half().to(dev)
    y = gated_linear_atomic(x, w_t, 0.5, b, **SMALL)
    assert y.shape == (1, 1, N)
    assert rel_err(y.view(1, N), ref_out(x.view(1, K), w_t, 0.5, b)) < 2e-3
    assert rel_err(gated_linear_atomic(x, w_t, 0.5, **SMALL).view(1, N), ref_out(x.view(1, K), w_t, 0.5, b)) > 0.05


def test_one_row_only(dev):
    with pytest.raises(ValueError):
        gated_linear_atomic(torch.randn(2, 64).half().to(dev), torch.randn(64, 8).half().to(dev), 0.1)
