"""Selection helpers: the Triton per-row top-k threshold and offline threshold calibration."""
import pytest
import torch

from kernel_testlib import rand_x, ref_mask, ref_out, rel_err
from kernels.score import topk_threshold_torch
from kernels.select import calibrate_threshold, topk_threshold


@pytest.mark.parametrize("K", [300, 64])
def test_topk_threshold_exact(dev, K):
    gen = torch.Generator().manual_seed(K)
    x = rand_x(3, K, torch.bfloat16, dev, gen)
    sc = (torch.rand(K, generator=gen) + 0.5).to(dev)
    for k in (0, 1, K // 3, K - 1, K, K + 5):
        t = topk_threshold(x, k, sc)
        assert t.shape == (3, 1)
        kept = ref_mask(x, t, sc).sum(-1)
        assert kept.tolist() == [min(k, K)] * 3
        assert torch.equal(t.cpu(), topk_threshold_torch(x, k, sc).cpu())
    # k largest, not any k: every kept score >= every dropped score
    t = topk_threshold(x, K // 4)
    s = x.float().abs().cpu()
    m = ref_mask(x, t)
    for r in range(3):
        assert s[r][m[r]].min() >= s[r][~m[r]].max()


def test_calibrate_threshold():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(64, 256, generator=gen)
    c = torch.rand(256, generator=gen) + 0.1
    for sp in (0.25, 0.5, 0.8):
        t = calibrate_threshold(x, None, sp)
        assert abs((x.abs() <= t).float().mean().item() - sp) < 1e-3
        t = calibrate_threshold(x, c, sp)
        assert abs((x.abs() * c <= t).float().mean().item() - sp) < 1e-3
    assert calibrate_threshold(x, None, 0.0) == float("-inf")  # level 0 skips nothing, not even exact zeros


def test_topk_feeds_gated_linear(dev, poison):
    from kernels.gated_gemv import gated_linear
    gen = torch.Generator().manual_seed(2)
    M, K, N = 3, 300, 77
    x = rand_x(M, K, torch.float16, dev, gen)
    w_t = torch.randn(K, N, generator=gen).half().to(dev)
    c = w_t.float().norm(dim=1)
    t = topk_threshold(x, 100, c)
    y = gated_linear(x, w_t, t, scale=c)
    assert ref_mask(x, t, c).sum(-1).tolist() == [100] * 3
    assert rel_err(y, ref_out(x, w_t, t, scale=c)) < 2e-3
