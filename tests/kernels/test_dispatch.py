"""The dispatch: the kernel where ``kernel_applies``, PyTorch elsewhere, the same function on every path."""
import pytest
import torch

import kernels.dispatch as dispatch
from kernel_testlib import rand_x, ref_out, rel_err
from kernels.dispatch import gated_linear_auto, gated_linear_torch, kernel_applies


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



def test_kernel_applies_only_to_few_rows_in_half_precision(monkeypatch):
    monkeypatch.setattr(dispatch, "ALLOW_CPU_KERNEL", True)
    w = torch.zeros(8, 16, dtype=torch.float16)
    assert kernel_applies(torch.zeros(1, 1, 16, dtype=torch.float16), w)
    assert not kernel_applies(torch.zeros(2, 16, dtype=torch.float16), w)  # default max_rows = 1
    assert kernel_applies(torch.zeros(2, 16, dtype=torch.float16), w, max_rows=2)
    assert not kernel_applies(torch.zeros(1, 16, dtype=torch.float32), w.float())  # fp32: PyTorch
    assert not kernel_applies(torch.zeros(1, 16, dtype=torch.bfloat16), w)  # dtype mismatch
    monkeypatch.setattr(dispatch, "ALLOW_CPU_KERNEL", False)
    assert not kernel_applies(torch.zeros(1, 16, dtype=torch.float16), w)  # CPU without the interpreter flag


def test_single_rows_take_the_cuda_kernel_where_it_builds(monkeypatch):
    """``gated_linear``: the CUDA kernel where ``cuda_applies`` (with the measured config of the shape), Triton
    elsewhere, and never CUDA when ``WINA_CUDA_GEMV=0`` set ``USE_CUDA`` off."""
    from kernels import cuda_gemv

    taken = []
    monkeypatch.setattr(cuda_gemv, "fits", lambda x, w_t: x.numel() == x.shape[-1])
    monkeypatch.setattr(cuda_gemv, "usable", lambda device: True)
    monkeypatch.setattr(cuda_gemv, "gated_linear_cuda", lambda *a, config=None, **k: taken.append(("cuda", config)))
    monkeypatch.setattr(dispatch, "triton_gated_linear", lambda *a, **k: taken.append(("triton", None)))
    monkeypatch.setattr(dispatch, "cuda_config", lambda out_f, in_f, dev: cuda_gemv.pick_config(out_f, in_f, 132))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    w_t = torch.zeros(4096, 14336, dtype=torch.float16)
    dispatch.gated_linear(torch.zeros(1, 4096, dtype=torch.float16), w_t, 0.5)
    dispatch.gated_linear(torch.zeros(2, 4096, dtype=torch.float16), w_t, 0.5)
    monkeypatch.setattr(dispatch, "USE_CUDA", False)
    dispatch.gated_linear(torch.zeros(1, 4096, dtype=torch.float16), w_t, 0.5)
    assert taken == [("cuda", cuda_gemv.tuned()["14336x4096"]), ("triton", None), ("triton", None)]


def test_cuda_launch_rule_reproduces_the_measured_table(monkeypatch):
    """Shapes outside kernels/cuda_tuned.json get the rule's config; on the measured shapes the rule gives the rows
    per warp the H100 sweep chose (the sweep's own pick of unroll/pipe may differ within its noise)."""
    from kernels import cuda_gemv

    table = cuda_gemv.tuned()
    assert set(table) == {"14336x4096", "4096x14336", "4096x4096", "17920x5120"}
    assert cuda_gemv.pick_config(14336, 4096, 132) == table["14336x4096"]
    monkeypatch.setattr(cuda_gemv, "tuned", lambda: {})
    for shape, measured in table.items():
        out_f, in_f = (int(v) for v in shape.split("x"))
        assert cuda_gemv.pick_config(out_f, in_f, 132).rows == measured.rows, shape
    assert cuda_gemv.pick_config(1024, 1024, 132).rows == 32  # too few blocks at any larger split
