"""Selection helpers, the dispatch (kernel vs PyTorch) logic and the module wrapper."""
import pytest
import torch

import kernels.dispatch as dispatch
from kernel_testlib import rand_x, ref_mask, ref_out, rel_err
from kernels.dispatch import gated_linear_auto, gated_linear_torch
from kernels.select import calibrate_threshold, topk_threshold, topk_threshold_torch


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
    assert calibrate_threshold(x, None, 0.0) == 0.0


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


def _spy(monkeypatch):
    calls = []
    real = dispatch.gated_linear

    def spy(*a, **k):
        calls.append("kernel")
        return real(*a, **k)

    monkeypatch.setattr(dispatch, "gated_linear", spy)
    return calls


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_dispatch_paths_agree(dev, poison, monkeypatch, dtype):
    monkeypatch.setattr(dispatch, "ALLOW_CPU_KERNEL", True)
    calls = _spy(monkeypatch)
    gen = torch.Generator().manual_seed(4)
    K, N = 300, 77
    w = torch.randn(N, K, generator=gen).to(dtype).to(dev)
    w_t = w.t().contiguous()
    b = torch.randn(N, generator=gen).to(dtype).to(dev)
    tol = 2e-3 if dtype == torch.float16 else 1.5e-2
    for M, want_kernel in ((1, True), (3, True), (5, False)):
        x = rand_x(M, K, dtype, dev, gen)
        t = torch.rand(K, generator=gen).to(dev)
        calls.clear()
        y = gated_linear_auto(x, w, w_t, t, b, max_rows=4)
        assert calls == (["kernel"] if want_kernel else [])
        ref = ref_out(x, w_t, t, b)
        assert rel_err(y, ref) < tol
        assert rel_err(gated_linear_torch(x, w, t, b), ref) < tol
    # Python threshold <= 0: plain dense F.linear, no kernel
    calls.clear()
    x = rand_x(2, K, dtype, dev, gen)
    y = gated_linear_auto(x, w, w_t, 0.0, b)
    assert calls == []
    assert rel_err(y, x.double().cpu() @ w_t.double().cpu() + b.double().cpu()) < tol


def test_dispatch_cpu_default_uses_torch(monkeypatch):
    calls = _spy(monkeypatch)
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(2, 64, generator=gen).half()
    w = torch.randn(32, 64, generator=gen).half()
    y = gated_linear_auto(x, w, w.t().contiguous(), 0.5)
    assert calls == []
    assert rel_err(y, ref_out(x, w.t(), 0.5)) < 2e-3

