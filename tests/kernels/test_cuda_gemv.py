"""The CUDA C++ gated GEMV (kernels/gated_gemv.cu through kernels.cuda_gemv) against a float64 reference.

Needs a CUDA device and nvcc: skipped elsewhere (CI's CPU machines). Run on a GPU host with
``python -m pytest tests/kernels/test_cuda_gemv.py``; the output of the last such run is committed under
``results/kernels/cuda/``.
"""
import pytest
import torch

from kernel_testlib import dense_err, rand_x, ref_mask, ref_out, rel_err
from kernels import cuda_gemv
from kernels.cuda_gemv import CudaConfig, fits, gated_linear_cuda

pytestmark = pytest.mark.skipif(not cuda_gemv.available(), reason="needs a CUDA device and nvcc")

DTYPES = [torch.float16, torch.bfloat16]
CONFIGS = [CudaConfig(), CudaConfig(warps=4, unroll=4, rows=32, pipe=False), CudaConfig(warps=8, unroll=4, rows=64),
           CudaConfig(warps=4, unroll=8, rows=256, pipe=False)]
# (in, out): in not a multiple of 32 or of a block's channels; out a multiple of 8 but not of the 256-column tile
SHAPES = [(300, 776), (1024, 256), (4096, 1032), (70, 8)]


def _thr(kind, K, gen):
    return {"float": lambda: 0.6, "0d": lambda: torch.tensor(0.6), "row": lambda: torch.full((1, 1), 0.6),
            "channel": lambda: torch.rand(K, generator=gen) * 1.4,
            "full": lambda: torch.rand(1, K, generator=gen) * 1.4}[kind]()


def _to(v):
    return v.cuda() if torch.is_tensor(v) else v


def _problem(dtype, K, N, kind, seed):
    gen = torch.Generator().manual_seed(seed)
    x = rand_x(1, K, dtype, "cuda", gen)
    w_t = torch.randn(K, N, generator=gen).to(dtype).cuda()
    return x, w_t, _to(_thr(kind, K, gen)), gen


def _check(y, x, w_t, t, bias=None, scale=None):
    ref = ref_out(x, w_t, t, bias, scale)
    err = rel_err(y.view(1, -1), ref)
    derr = dense_err(x, w_t, t, bias, scale)
    assert err <= 1.5 * derr + 1e-7, f"kernel err {err:.3e} > 1.5 x dense err {derr:.3e}"


@pytest.mark.parametrize("cfg", CONFIGS, ids=str)
@pytest.mark.parametrize("K,N", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["float", "0d", "row", "channel", "full"])
def test_matches_float64_and_never_reads_a_dropped_row(cfg, K, N, dtype, kind):
    x, w_t, t, _ = _problem(dtype, K, N, kind, K * 7 + N)
    keep = ref_mask(x, t)[0]
    assert 0.15 < keep.float().mean().item() < 0.85  # the gate really removes and keeps channels
    w_poisoned = w_t.clone()
    w_poisoned[~keep.cuda()] = float("nan")  # a dropped channel's row is never read: NaN would reach y
    y = gated_linear_cuda(x, w_poisoned, t, config=cfg)
    assert y.shape == (1, N) and y.dtype == dtype
    _check(y, x, w_t, t)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale_dtype", ["fp32", "same"])
def test_weight_informed_scale_and_bias(dtype, scale_dtype):
    K, N = 1000, 512
    x, w_t, _, gen = _problem(dtype, K, N, "float", 3)
    scale = (w_t.float().norm(dim=1) / K ** 0.5).to(torch.float32 if scale_dtype == "fp32" else dtype)
    bias = torch.randn(N, generator=gen).to(dtype).cuda()
    t = torch.tensor(0.5, device="cuda")
    keep = ref_mask(x, t, scale)[0].float().mean().item()
    assert 0.15 < keep < 0.85
    for cfg in CONFIGS:
        _check(gated_linear_cuda(x, w_t, t, bias, scale, config=cfg), x, w_t, t, bias, scale)
    # the scale changes which channels are kept (a kernel that ignores it fails the check above)
    assert not torch.equal(ref_mask(x, t, scale), ref_mask(x, t))


def test_bitwise_repeatable_and_graph_replay_equal():
    x, w_t, t, _ = _problem(torch.bfloat16, 4096, 2048, "0d", 5)
    cfg = CudaConfig(rows=32)  # 16 k splits: the last-block reduction decides every output
    first = gated_linear_cuda(x, w_t, t, config=cfg)
    for _ in range(5):
        assert torch.equal(gated_linear_cuda(x, w_t, t, config=cfg), first)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        gated_linear_cuda(x, w_t, t, config=cfg)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        y = gated_linear_cuda(x, w_t, t, config=cfg)
    for _ in range(3):
        g.replay()
        torch.cuda.synchronize()
        assert torch.equal(y, first)
    x.mul_(-1.5)  # new activations in place: the replay reads them
    g.replay()
    torch.cuda.synchronize()
    assert torch.equal(y, gated_linear_cuda(x, w_t, t, config=cfg))


def test_zero_threshold_keeps_every_nonzero_channel():
    x, w_t, _, _ = _problem(torch.float16, 512, 256, "float", 9)
    y = gated_linear_cuda(x, w_t, 0.0, config=CudaConfig(rows=64))
    assert rel_err(y.view(1, -1), x.double().cpu() @ w_t.double().cpu()) <= 1.5 * dense_err(x, w_t, 0.0) + 1e-7


def test_refuses_what_it_cannot_take():
    x = torch.randn(1, 64, device="cuda", dtype=torch.float16)
    assert fits(x, torch.randn(64, 16, device="cuda", dtype=torch.float16))
    for w_t in (torch.randn(64, 12, device="cuda", dtype=torch.float16),          # out % 8 != 0
                torch.randn(16, 64, device="cuda", dtype=torch.float16).t(),      # not contiguous
                torch.randn(64, 16, device="cuda", dtype=torch.bfloat16)):        # another dtype
        assert not fits(x, w_t)
        with pytest.raises(ValueError, match="CUDA gated GEMV"):
            gated_linear_cuda(x, w_t, 0.5)
    assert not fits(torch.randn(2, 64, device="cuda", dtype=torch.float16),
                    torch.randn(64, 16, device="cuda", dtype=torch.float16))      # two rows
