"""Gates (score -> mask) and the modules that apply them and count what they skip.

A gate turns an activation ``x[..., in]`` into a boolean keep-mask at a *level* (the fraction of channels
to skip). Two rules cover every method, both built on ``kernels.score`` (the one definition of the score
``|x| * scale`` and its masks, shared with the Triton kernel's dispatch):
- ``TopKGate``: keep the ``k = int(in * (1 - level))`` channels with the largest ``|x| * scale`` per token
  (WINA; R-Sparse; ``scale=None`` is plain ``|x|``);
- ``ThresholdGate``: keep ``|x| > t(level)``, where ``t`` is the ``level`` quantile of ``|x|`` measured on
  calibration data (TEAL, CATS).
``GatedLinear`` replaces an ``nn.Linear`` and computes ``W (x * mask) + b`` (+ an optional correction for the
dropped part, R-Sparse's low-rank term); ``GatedActivation`` wraps an activation function (CATS). The gate is
consulted at every level, 0 included (a gate at level 0 keeps every channel). Both modules count kept channels
on the device (no host sync, CUDA-graph safe) so that the sparsity actually reached is measured, not assumed.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F

from kernels import dispatch
from kernels.score import SignedHistogram, quantile_threshold, sorted_scores, threshold_mask, topk_mask
from wina.config import KERNEL_MODES
from wina.errors import SparsityError


class Gate(nn.Module):
    """Base gate: a level in [0, 1] and ``mask(x)``; ``residual`` adds a term for dropped channels."""

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

    def mask_rule(self, n: int):
        """``(rule, value, scale)`` for ``kernels.mask.masked_activations`` (this gate's mask in one kernel); None:
        the gate has no such form."""
        return None


class TopKGate(Gate):
    def __init__(self, scale: torch.Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("scale", None if scale is None else scale.detach().clone(), persistent=False)

    def keep_count(self, n: int) -> int:
        return int(n * (1.0 - self.level))

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        return topk_mask(x, self.keep_count(x.shape[-1]), self.scale)

    def mask_rule(self, n: int):
        return "topk", self.keep_count(n), self.scale

    def kernel_args(self, x: torch.Tensor):
        from kernels.select import topk_threshold

        return topk_threshold(x, self.keep_count(x.shape[-1]), self.scale), self.scale


def sample_scores(sample: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    """Sorted fp32 scores of a calibration sample: ``[2, n]`` rows (values; their channel indices, as
    ``wina.calibrate`` collects them) or ``[n]`` values (plain ``|x|`` only)."""
    if sample.dim() == 2 and sample.shape[0] == 2:
        values, channels = sample[0], sample[1].long()
        if scale is not None:
            return sorted_scores(values.abs() * scale.float().to(values.device)[channels])
        return sorted_scores(values)
    if scale is not None:
        raise ValueError("a weight-informed threshold needs the channel of every sample value")
    return sorted_scores(sample)


class ThresholdGate(Gate):
    """``|x| * scale > t``, ``t`` from a calibration sample: the ``level`` quantile of the same score
    (``rule="quantile"``), or TEAL's ``icdf(0.5 + level / 2)`` of a histogram of the signed values
    (``rule="histogram"``, plain ``|x|`` only)."""

    def __init__(self, sample: torch.Tensor, scale: torch.Tensor | None = None, rule: str = "quantile") -> None:
        super().__init__()
        if rule == "histogram" and scale is not None:
            raise SparsityError("threshold_rule=histogram is TEAL's rule on signed activations; it takes no "
                                "weight-informed scale (use threshold_rule=quantile)")
        self.rule = rule
        self.register_buffer("scale", None if scale is None else scale.detach().float().clone(), persistent=False)
        self.threshold = float("-inf")
        self._calibrate(sample)

    def _calibrate(self, sample: torch.Tensor) -> None:
        """Sort the sample where it is (a GPU sorts 420 samples of a SmolLM2 job in milliseconds, a CPU in 2-3 s); keep
        the sorted scores on the CPU (thresholds are read from them as numbers)."""
        if self.rule == "histogram":
            self.histogram = SignedHistogram(sample[0] if sample.dim() == 2 else sample)
        else:
            scale = None if self.scale is None else self.scale.to(sample.device)
            self.sorted = sample_scores(sample, scale).cpu()

    def resample(self, sample: torch.Tensor) -> None:
        """Replace the calibration sample and re-apply the current level."""
        self._calibrate(sample)
        self.set_level(self.level)

    def set_level(self, level: float) -> None:
        super().set_level(level)
        if self.rule == "histogram":
            self.threshold = self.histogram.threshold(level)
        else:
            self.threshold = quantile_threshold(self.sorted, level)

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        return threshold_mask(x, self.threshold, self.scale)

    def mask_rule(self, n: int):
        return "threshold", self.threshold, self.scale

    def kernel_args(self, x: torch.Tensor):
        return self.threshold, self.scale


class Counter:
    """What a gated module shares: its gate, token policy and kernel mode, the gating itself (``masked``), and the
    kept / seen channel counts of the place it gates: over the positions the token policy gates (the method's own
    sparsity, comparable to its target) and over every position (dense prefixes included: what the computation
    actually skipped). Kept counts accumulate on the device (read once, when asked; no host sync per call), seen
    counts are known from shapes."""

    counting: bool = True  # off: no counting work at all (timing runs)
    gating: bool = True  # off: the dense function, uncounted (``ungated``)

    def _init_gating(self, gate: Gate, tokens: TokenPolicy | None, kernel: str) -> None:
        if kernel not in KERNEL_MODES:
            raise ValueError(f"kernel={kernel!r}; accepted: {', '.join(KERNEL_MODES)}")
        self.gate = gate
        self.tokens = tokens or TokenPolicy()
        self.kernel = kernel
        self._scratch: torch.Tensor | None = None  # where the mask kernel adds the counts of uncounted calls
        self.reset_counts()

    def reset_counts(self) -> None:
        self._kept: torch.Tensor | None = None  # int64 [2] on the device: kept over gated positions, over all
        self._seen = [0, 0]

    def kept_buffer(self, device) -> torch.Tensor:
        if self._kept is None:
            self._kept = torch.zeros(2, dtype=torch.int64, device=device)
        return self._kept

    def count_seen(self, x: torch.Tensor, dense_positions: int = 0) -> None:
        self._seen[1] += x.numel()
        self._seen[0] += x.numel() // x.shape[-2] * (x.shape[-2] - dense_positions) if dense_positions else x.numel()

    def count(self, mask: torch.Tensor, x: torch.Tensor, dense_positions: int = 0) -> None:
        if not self.counting:
            return
        kept = self.kept_buffer(x.device)
        all_kept = mask.sum()
        kept[1] += all_kept
        kept[0] += mask[..., dense_positions:, :].sum() if dense_positions else all_kept
        self.count_seen(x, dense_positions)

    def _read(self, i: int) -> int:
        return 0 if self._kept is None else int(self._kept[i])

    @property
    def kept(self) -> int:
        return self._read(0)

    @property
    def seen(self) -> int:
        return self._seen[0]

    @property
    def measured(self) -> float | None:
        """Skipped fraction over the gated positions."""
        return None if self._seen[0] == 0 else 1.0 - self._read(0) / self._seen[0]

    @property
    def measured_all_positions(self) -> float | None:
        """Skipped fraction over every position (dense prefixes included)."""
        return None if self._seen[1] == 0 else 1.0 - self._read(1) / self._seen[1]

    def masked(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` times the gate's keep-mask (dense prefix kept), counted: one Triton kernel where
        ``kernels.dispatch.mask_kernel_applies`` (CUDA, ``kernel="auto"``), else the PyTorch gate."""
        rule = self.gate.mask_rule(x.shape[-1]) if self.kernel == "auto" and dispatch.mask_kernel_applies(x) else None
        if rule is None:
            mask, dense = self.tokens.apply_(self.gate.mask(x))
            self.count(mask, x, dense)
            return x * mask
        dense = self.tokens.prefix_len(x)
        if self.counting:
            kept = self.kept_buffer(x.device)
        else:  # the kernel adds its counts somewhere: a scratch buffer, kept for the next uncounted call
            if self._scratch is None or self._scratch.device != x.device:
                self._scratch = torch.zeros(2, dtype=torch.int64, device=x.device)
            kept = self._scratch
        out = dispatch.masked_activations(x, *rule, dense, kept)
        if self.counting:
            self.count_seen(x, dense)
        return out


@contextmanager
def _set_on_counters(model: nn.Module, name: str, value: bool):
    counters = [m for m in model.modules() if isinstance(m, Counter)]
    saved = [getattr(m, name) for m in counters]
    for m in counters:
        setattr(m, name, value)
    try:
        yield
    finally:
        for m, old in zip(counters, saved):
            setattr(m, name, old)


def uncounted(model: nn.Module):
    """Forward passes of ``model`` inside this leave its gated modules' counts as they were (checks, warm-ups)."""
    return _set_on_counters(model, "counting", False)


def ungated(model: nn.Module):
    """Forward passes of ``model`` inside this are the dense model's: every gated module computes its plain function
    and counts nothing (checks of what is not gating, such as attention masks)."""
    return _set_on_counters(model, "gating", False)


def dense_prefix_len(seq_len: int, frac: float, rounding: str = "wina") -> int:
    """Leading positions left dense: ``L - int((1 - frac) L)`` (``rounding="wina"``: microsoft/wina at 0.01, TEAL's
    ``L - L // 2`` at 0.5) or ``int(frac L)`` (``rounding="floor"``: R-Sparse at 0.9). Decode steps (one position)
    are gated."""
    if frac <= 0 or seq_len <= 1:
        return 0
    return seq_len - int((1.0 - frac) * seq_len) if rounding == "wina" else int(frac * seq_len)


class TokenPolicy:
    """Which positions of a sequence a gated module gates (shared by every gated module of a model)."""

    def __init__(self, dense_prefix: float = 0.0, rounding: str = "wina") -> None:
        self.dense_prefix, self.rounding = dense_prefix, rounding
        self._fixed: int | None = None

    def of_length(self, seq_len: int) -> int:
        """Dense leading positions of a sequence of ``seq_len`` positions."""
        return dense_prefix_len(seq_len, self.dense_prefix, self.rounding)

    def prefix_len(self, x: torch.Tensor) -> int:
        """Dense leading positions of a ``[..., L, in]`` activation (none for a ``[rows, in]`` one): those of a
        sequence of ``L`` positions, or the count ``fixed`` sets."""
        if x.dim() < 3:
            return 0
        return self.of_length(x.shape[-2]) if self._fixed is None else min(self._fixed, x.shape[-2])

    @contextmanager
    def fixed(self, prefix: int):
        """Inside: every ``[..., L, in]`` activation has ``prefix`` dense leading positions, whatever its ``L`` (rows
        that pack several requests, each of whose own length gives this prefix)."""
        saved, self._fixed = self._fixed, int(prefix)
        try:
            yield
        finally:
            self._fixed = saved

    def apply_(self, mask: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Set the dense prefix of a ``[..., L, in]`` mask to keep-all (in place); the mask and the prefix length."""
        p = self.prefix_len(mask)
        if p:
            mask[..., :p, :] = True
        return mask, p


def token_policies(model: nn.Module) -> list[TokenPolicy]:
    """The distinct token policies of ``model``'s gated modules (none for a dense model)."""
    seen: dict[int, TokenPolicy] = {}
    for m in model.modules():
        if isinstance(m, Counter):
            seen.setdefault(id(m.tokens), m.tokens)
    return list(seen.values())


class GatedLinear(nn.Module, Counter):
    """``y = W (x * mask) + b [+ gate.residual(x * ~mask)]``; exactly ``F.linear`` where the gate keeps all.

    ``kernel="auto"``: where ``kernels.dispatch.kernel_applies`` (a single row, i.e. decode, on CUDA in
    fp16/bf16) and the gate is a threshold on ``|x| * scale``, the Triton kernel reads only the kept weight rows;
    everything else takes the PyTorch path. Both compute the same function."""

    def __init__(self, linear: nn.Linear, gate: Gate, tokens: TokenPolicy | None = None, kernel: str = "auto") -> None:
        super().__init__()
        self.weight = linear.weight
        self.bias = linear.bias
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self._w_t = None
        self._init_gating(gate, tokens, kernel)

    def _kernel_forward(self, x: torch.Tensor, threshold, scale) -> torch.Tensor:
        if self._w_t is None:  # the kernel reads W transposed: a kept channel is one contiguous row
            self._w_t = self.weight.detach().t().contiguous()
        y = dispatch.gated_linear(x, self._w_t, threshold, self.bias, scale)
        if self.counting or type(self.gate).residual is not Gate.residual:
            mask = threshold_mask(x.float(), threshold, scale)  # what the kernel kept (it gates in fp32)
            self.count(mask, x)
            extra = self.gate.residual(x * ~mask)
            if extra is not None:
                y = y + extra
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.gating:
            return F.linear(x, self.weight, self.bias)
        if self.kernel == "auto" and dispatch.kernel_applies(x, self.weight):
            if (args := self.gate.kernel_args(x)) is not None:
                return self._kernel_forward(x, *args)
        kept = self.masked(x)
        y = F.linear(kept, self.weight, self.bias)
        if type(self.gate).residual is Gate.residual:
            return y
        extra = self.gate.residual(x - kept)  # the dropped channels (x - x * mask == x * ~mask, exactly)
        return y if extra is None else y + extra

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, gate={type(self.gate).__name__}, level={self.gate.level:.3f}"


class GatedActivation(nn.Module, Counter):
    """``a = act(x); a * mask(a)``: CATS's threshold on ``silu(gate_proj(x))``."""

    def __init__(self, act: nn.Module, gate: Gate, tokens: TokenPolicy | None = None, kernel: str = "auto") -> None:
        super().__init__()
        self.act = act
        self._init_gating(gate, tokens, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.act(x)
        return self.masked(a) if self.gating else a
