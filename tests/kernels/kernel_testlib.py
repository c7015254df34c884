import torch

from kernels.score import threshold_mask


def rand_x(M, K, dtype, dev, gen, zeros_frac=0.0):
    """Random activations (never all zeros); optional exact zeros."""
    x = torch.randn(M, K, generator=gen, dtype=torch.float32)
    if zeros_frac:
        x[torch.rand(M, K, generator=gen) < zeros_frac] = 0.0
    assert x.abs().sum() > 0
    return x.to(dtype).to(dev)


def ref_mask(x, threshold, scale=None):
    """The gate the kernel must compute: ``kernels.score``'s definition (the harness's gates use it) on fp32 values."""
    cpu = (lambda v: v.float().cpu() if torch.is_tensor(v) else v)  # noqa: E731
    return threshold_mask(cpu(x), cpu(threshold), cpu(scale))


def ref_out(x, w_t, threshold, bias=None, scale=None):
    """float64 reference W (x * mask) (+ bias) -> [M, N]."""
    m = ref_mask(x, threshold, scale)
    y = (x.double().cpu() * m) @ w_t.double().cpu()
    if bias is not None:
        y = y + bias.double().cpu()
    return y


def rel_err(y, ref):
    y = y.double().cpu()
    assert torch.isfinite(y).all(), "non-finite output (unwritten or poisoned element)"
    return ((y - ref).norm() / ref.norm()).item()


def dense_err(x, w_t, threshold, bias=None, scale=None):
    """Error of PyTorch F.linear on the same (masked) problem, in x's dtype, same device."""
    m = ref_mask(x, threshold, scale).to(x.device)
    w = w_t.t().contiguous()
    y = torch.nn.functional.linear(x * m.to(x.dtype), w, bias)
    return rel_err(y, ref_out(x, w_t, threshold, bias, scale))
