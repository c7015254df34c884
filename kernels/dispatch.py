"""Use the Triton gated-linear kernel where it pays, else the PyTorch path.

``gated_linear_auto`` picks, without syncing the host (CUDA-graph safe):
  * threshold is a Python number <= 0 (no gating)     -> F.linear(x, weight, bias)
  * CUDA tensor, Triton importable, rows <= max_rows   -> kernels.gated_gemv.gated_linear
    (inside the kernel, a chunk whose union density exceeds ``dense_cutoff`` is read densely)
  * otherwise (CPU, more rows, prefill)                -> gated_linear_torch
Default max_rows = 1: on H100 the kernel wins for single-row decode only.  With independent
per-row masks the union of 8 rows is already >= 83% dense at 80% sparsity, and the M > 1
(tl.dot) path runs at ~0.75x dense for M = 8 and ~0.2x for M = 64 (results/kernels/);
pass max_rows > 1 only when the rows' masks are known to overlap strongly.
All paths compute the same function: y = (x * (|x| * scale > threshold)) W^T + bias, the gate
evaluated in fp32.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

try:  # Triton is optional at import time (CPU-only installs)
    from .gated_gemv import gated_linear
except Exception:  # pragma: no cover - exercised only without triton
    gated_linear = None

DEFAULT_MAX_ROWS = 1
ALLOW_CPU_KERNEL = False  # tests: let CPU tensors take the kernel path (Triton interpreter)


def gate_mask(x: torch.Tensor, threshold, scale: torch.Tensor | None = None) -> torch.Tensor:
    """Boolean keep-mask |x| * scale > threshold, compared in fp32 like the kernel."""
    a = x.abs().float()
    if scale is not None:
        a = a * scale.float()
    t = threshold.float() if torch.is_tensor(threshold) else float(threshold)
    return a > t


def gated_linear_torch(x: torch.Tensor, weight: torch.Tensor, threshold, bias: torch.Tensor | None = None,
                       scale: torch.Tensor | None = None) -> torch.Tensor:
    """Reference/fallback path: F.linear(x * mask, weight, bias) with weight [out, in]."""
    return F.linear(x * gate_mask(x, threshold, scale).to(x.dtype), weight, bias)


def gated_linear_auto(x: torch.Tensor, weight: torch.Tensor | None, w_t: torch.Tensor | None, threshold,
                      bias: torch.Tensor | None = None, scale: torch.Tensor | None = None, *,
                      max_rows: int = DEFAULT_MAX_ROWS, dense_cutoff: float = 0.9) -> torch.Tensor:
    """Gated linear; weight [out, in] (PyTorch layout) and/or w_t = weight.t().contiguous()."""
    if weight is None and w_t is None:
        raise ValueError("need weight or w_t")
    if weight is None:
        weight = w_t.t()
    if not torch.is_tensor(threshold) and float(threshold) <= 0 and scale is None:
        return F.linear(x, weight, bias)
    rows = x.numel() // max(1, x.shape[-1])
    on_dev = x.is_cuda or (ALLOW_CPU_KERNEL and x.device.type == "cpu")
    if (gated_linear is not None and on_dev and w_t is not None and rows <= max_rows
            and x.dtype in (torch.float16, torch.bfloat16) and w_t.dtype == x.dtype):
        return gated_linear(x, w_t, threshold, bias, scale, dense_cutoff=dense_cutoff)
    return gated_linear_torch(x, weight, threshold, bias, scale)


__all__ = ["gate_mask", "gated_linear_auto", "gated_linear_torch", "DEFAULT_MAX_ROWS"]
