"""Gates (score -> mask) and the modules that apply them and count what they skip.

A gate turns an activation ``x[..., in]`` into a boolean keep-mask at a *level* (the fraction of channels
to skip). Two rules cover every method:
- ``TopKGate``: keep the ``k = int(in * (1 - level))`` channels with the largest ``|x| * scale`` per token
  (WINA; R-Sparse; ``scale=None`` is plain ``|x|``);
- ``ThresholdGate``: keep ``|x| > t(level)``, where ``t`` is the ``level`` quantile of ``|x|`` measured on
  calibration data (TEAL, CATS).
``GatedLinear`` replaces an ``nn.Linear`` and computes ``W (x * mask) + b`` (+ an optional correction for the
dropped part, R-Sparse's low-rank term); ``GatedActivation`` wraps an activation function (CATS).
Both count kept channels per token so that the sparsity actually reached is measured, not assumed.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Gate(nn.Module):
    """Base gate: a level in [0, 1) and ``mask(x)``; ``residual`` adds a term for dropped channels."""

    def __init__(self) -> None:
        super().__init__()
        self.level = 0.0

    def set_level(self, level: float) -> None:
        if not 0.0 <= level <= 1.0:
            raise ValueError(f"gate level {level} outside [0, 1]")
        self.level = float(level)

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def residual(self, x_dropped: torch.Tensor) -> torch.Tensor | None:
        return None

    def kernel_args(self, x: torch.Tensor):
        """``(threshold, scale)`` such that ``|x| * scale > threshold`` is this gate's mask (for the Triton
        kernel), or None if the gate cannot be expressed so."""
        return None


class TopKGate(Gate):
    def __init__(self, scale: torch.Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("scale", None if scale is None else scale.detach().clone(), persistent=False)

    def keep_count(self, n: int) -> int:
        return int(n * (1.0 - self.level))

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-1]
        k = self.keep_count(n)
        score = x.abs()
        if self.scale is not None:
            score = score * self.scale.to(score.dtype)
        keep = torch.zeros_like(x, dtype=torch.bool)
        if k > 0:
            keep.scatter_(-1, score.topk(k, dim=-1, sorted=False).indices, True)
        return keep

    def kernel_args(self, x: torch.Tensor):
        from kernels.select import topk_threshold

        return topk_threshold(x, self.keep_count(x.shape[-1]), self.scale), self.scale


class ThresholdGate(Gate):
    """``|x| > t`` with ``t`` the ``level`` quantile of a calibration sample of ``|x|``."""

    def __init__(self, sample: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("sorted", sample.detach().abs().float().flatten().sort().values, persistent=False)
        self.threshold = float("-inf")

    def resample(self, sample: torch.Tensor) -> None:
        """Replace the calibration sample and re-apply the current level."""
        self.sorted = sample.detach().abs().float().flatten().sort().values.to(self.sorted.device)
        self.set_level(self.level)

    def set_level(self, level: float) -> None:
        super().set_level(level)
        n = self.sorted.numel()
        self.threshold = float("-inf") if level <= 0 else float(self.sorted[min(int(level * n), n - 1)])

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        return x.abs() > self.threshold

    def kernel_args(self, x: torch.Tensor):
        return self.threshold, None


class Counter:
    """Kept / seen channel counts of one gated place (reset before a measurement)."""

    def reset_counts(self) -> None:
        self.kept = 0
        self.seen = 0

    def count(self, mask: torch.Tensor | None, x: torch.Tensor) -> None:
        n = x.numel()
        self.seen += n
        self.kept += n if mask is None else int(mask.sum())

    @property
    def measured(self) -> float | None:
        return None if self.seen == 0 else 1.0 - self.kept / self.seen


def dense_prefix_len(seq_len: int, frac: float) -> int:
    """Leading positions left dense (the WINA reference: ``L - int((1 - frac) * L)``); decode steps are gated."""
    if frac <= 0 or seq_len <= 1:
        return 0
    return seq_len - int((1.0 - frac) * seq_len)


def _apply_prefix(mask: torch.Tensor, frac: float) -> torch.Tensor:
    if mask.dim() >= 3:
        p = dense_prefix_len(mask.shape[-2], frac)
        if p:
            mask[..., :p, :] = True
    return mask


KERNEL_MODES = ("auto", "off")


class GatedLinear(nn.Module, Counter):
    """``y = W (x * mask) + b [+ gate.residual(x * ~mask)]``; exactly ``F.linear`` at level 0.

    ``kernel="auto"``: a single row (decode) on CUDA in fp16/bf16 goes through the Triton kernel, which reads only
    the kept weight rows (``kernels/``); everything else takes the PyTorch path. Both compute the same function."""

    def __init__(self, linear: nn.Linear, gate: Gate, dense_prefix: float = 0.0, kernel: str = "auto") -> None:
        super().__init__()
        self.weight = linear.weight
        self.bias = linear.bias
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.gate = gate
        self.dense_prefix = dense_prefix
        self.kernel = kernel
        self._w_t = None
        self.reset_counts()

    def _kernel_ok(self, x: torch.Tensor) -> bool:
        from kernels import dispatch

        on_device = x.is_cuda or (dispatch.ALLOW_CPU_KERNEL and x.device.type == "cpu")
        return (self.kernel == "auto" and on_device and x.numel() == x.shape[-1] and dispatch.gated_linear is not None
                and x.dtype in (torch.float16, torch.bfloat16) and self.weight.dtype == x.dtype)

    def _kernel_forward(self, x: torch.Tensor, args) -> torch.Tensor:
        from kernels.dispatch import gate_mask, gated_linear_auto

        if self._w_t is None:  # the kernel reads W transposed: a kept channel is one contiguous row
            self._w_t = self.weight.detach().t().contiguous()
        threshold, scale = args
        mask = gate_mask(x, threshold, scale)
        self.count(mask, x)
        y = gated_linear_auto(x, self.weight, self._w_t, threshold, self.bias, scale)
        extra = self.gate.residual(x * ~mask)
        return y if extra is None else y + extra

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate.level <= 0.0:
            self.count(None, x)
            return F.linear(x, self.weight, self.bias)
        if self._kernel_ok(x) and (args := self.gate.kernel_args(x)) is not None:
            return self._kernel_forward(x, args)
        mask = _apply_prefix(self.gate.mask(x), self.dense_prefix)
        self.count(mask, x)
        y = F.linear(x * mask, self.weight, self.bias)
        extra = self.gate.residual(x * ~mask)
        return y if extra is None else y + extra

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, gate={type(self.gate).__name__}, level={self.gate.level:.3f}"


class GatedActivation(nn.Module, Counter):
    """``a = act(x); a * mask(a)``: CATS's threshold on ``silu(gate_proj(x))``."""

    def __init__(self, act: nn.Module, gate: Gate, dense_prefix: float = 0.0) -> None:
        super().__init__()
        self.act = act
        self.gate = gate
        self.dense_prefix = dense_prefix
        self.reset_counts()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.act(x)
        if self.gate.level <= 0.0:
            self.count(None, a)
            return a
        mask = _apply_prefix(self.gate.mask(a), self.dense_prefix)
        self.count(mask, a)
        return a * mask
