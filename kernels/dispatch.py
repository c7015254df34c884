"""Use a gated-linear kernel where it pays, else the PyTorch path.

``kernel_applies(x, w)`` is the one answer to "may the kernel run?": a CUDA tensor (or CPU under the
interpreter in tests), Triton importable, at most ``max_rows`` rows (default 1: on the H100 the kernel wins
for single-row decode only; with independent per-row masks the union of 8 rows is already >= 83% dense at 80%
sparsity, results/kernels/), fp16/bf16 with the weight in the same dtype.
``mask_kernel_applies(x)``: may ``kernels.mask.masked_activations`` (score, select, mask and count in one kernel)
gate a batched activation? (CUDA, or CPU under the interpreter in tests; the harness's gated modules use it for
every call the decode kernel does not take.)
``gated_linear_auto`` uses it without syncing the host (CUDA-graph safe):
  * threshold is a Python number <= 0 and no scale (no gating)  -> F.linear(x, weight, bias)
  * ``kernel_applies``                                          -> ``gated_linear``:
      one row where ``cuda_applies`` (the CUDA C++ kernel builds here)  -> kernels.cuda_gemv.gated_linear_cuda
                                                                          (launch config from kernels/cuda_tuned.json)
      otherwise                                                   -> kernels.gated_gemv.gated_linear (Triton;
      a chunk whose union density exceeds ``dense_cutoff`` is read densely)
    Measured on an H100 (results/kernels/cuda/): the CUDA kernel is faster than the Triton one in every single-row
    cell of the four decode shapes at 0-80%; ``WINA_CUDA_GEMV=0`` keeps every call on Triton.
  * otherwise (CPU, more rows, prefill)                         -> gated_linear_torch
All paths compute ``F.linear(x * threshold_mask(x.float(), threshold, scale), weight, bias)`` (``kernels.score``,
evaluated on fp32 values as the kernel does).
"""
from __future__ import annotations

import functools
import os

import torch
import torch.nn.functional as F

from . import cuda_gemv
from .score import threshold_mask

try:  # Triton is optional at import time (CPU-only installs)
    from .gated_gemv import gated_linear as triton_gated_linear
    from .mask import masked_activations
except Exception:  # pragma: no cover - exercised only without triton
    triton_gated_linear = masked_activations = None

USE_CUDA = os.environ.get("WINA_CUDA_GEMV", "1") != "0"
DEFAULT_MAX_ROWS = 1
ALLOW_CPU_KERNEL = False  # tests: let CPU tensors take the kernel path (Triton interpreter)


def kernel_applies(x: torch.Tensor, weight: torch.Tensor, max_rows: int = DEFAULT_MAX_ROWS) -> bool:
    """May the Triton kernel compute ``x @ weight``-shaped gated work here?"""
    rows = x.numel() // max(1, x.shape[-1])
    on_device = x.is_cuda or (ALLOW_CPU_KERNEL and x.device.type == "cpu")
    return (triton_gated_linear is not None and on_device and rows <= max_rows
            and x.dtype in (torch.float16, torch.bfloat16) and weight.dtype == x.dtype)


def mask_kernel_applies(x: torch.Tensor) -> bool:
    """May ``kernels.mask.masked_activations`` gate ``x`` (any number of rows: prefill, scoring) here?"""
    on_device = x.is_cuda or (ALLOW_CPU_KERNEL and x.device.type == "cpu")
    return masked_activations is not None and on_device and x.dim() >= 2 and x.numel() > 0


def cuda_applies(x: torch.Tensor, w_t: torch.Tensor) -> bool:
    """Does the CUDA C++ kernel take this call? One fp16/bf16 row on a device where it builds, ``w_t`` as it needs."""
    return USE_CUDA and cuda_gemv.fits(x, w_t) and cuda_gemv.usable(x.device)


@functools.lru_cache(maxsize=64)
def cuda_config(out_features: int, in_features: int, device_index: int) -> cuda_gemv.CudaConfig:
    """The CUDA kernel's launch config for this weight shape on this device (``kernels.cuda_gemv.pick_config``)."""
    sms = torch.cuda.get_device_properties(device_index).multi_processor_count
    return cuda_gemv.pick_config(out_features, in_features, sms)


def gated_linear(x: torch.Tensor, w_t: torch.Tensor, threshold, bias: torch.Tensor | None = None,
                 scale: torch.Tensor | None = None, *, dense_cutoff: float = 0.9) -> torch.Tensor:
    """The kernel path of ``gated_linear_auto``: the CUDA C++ kernel where ``cuda_applies``, else the Triton one."""
    if cuda_applies(x, w_t):
        dev = x.device.index if x.device.index is not None else torch.cuda.current_device()
        return cuda_gemv.gated_linear_cuda(x, w_t, threshold, bias, scale,
                                           config=cuda_config(w_t.shape[1], w_t.shape[0], dev))
    return triton_gated_linear(x, w_t, threshold, bias, scale, dense_cutoff=dense_cutoff)


def gated_linear_torch(x: torch.Tensor, weight: torch.Tensor, threshold, bias: torch.Tensor | None = None,
                       scale: torch.Tensor | None = None) -> torch.Tensor:
    """Reference/fallback path: F.linear(x * mask, weight, bias) with weight [out, in]."""
    return F.linear(x * threshold_mask(x.float(), threshold, scale).to(x.dtype), weight, bias)


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
    if w_t is not None and kernel_applies(x, w_t, max_rows):
        return gated_linear(x, w_t, threshold, bias, scale, dense_cutoff=dense_cutoff)
    return gated_linear_torch(x, weight, threshold, bias, scale)


__all__ = ["kernel_applies", "cuda_applies", "cuda_config", "mask_kernel_applies", "masked_activations", "gated_linear",
           "gated_linear_auto", "gated_linear_torch",
           "DEFAULT_MAX_ROWS"]
