"""The one public entry: ``sparsify_(model, config, calibration_tokens)`` for every method.

A method is a small class with a frozen config (``SparsityConfig`` subclass) that says
- which targets it gates (projection inputs, or the MLP activation),
- whether it needs activation samples (quantile thresholds) from calibration,
- how to prepare the model (WINA's transform, R-Sparse's SVDs) and which gate each target gets,
- how a model-level target becomes per-target levels under uniform allocation.
Everything else (hooking, calibration, greedy allocation, counting, FLOPs) is shared and lives here and in
the modules it calls. Methods register themselves with ``@register``; ``baselines`` modules are discovered.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
import pkgutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn as nn

from experiments.errors import HarnessError
from wina import allocate
from wina.calibrate import CalibrationConfig, capture_layer_io, collect_samples, sequential_samples_
from wina.gated import KERNEL_MODES, Counter, Gate, GatedActivation, GatedLinear
from wina.targets import Target, activation_targets, block_params, decoder_layers, linear_targets

ALLOCATIONS = ("uniform", "greedy")


@dataclass(frozen=True)
class SparsityConfig:
    sparsity: float = 0.5
    allocation: str = "uniform"  # uniform | greedy (TEAL's block-wise search)
    dense_prefix: float = 0.0  # leading fraction of each sequence left dense (WINA reference: 0.01)
    greedy_step: float = 0.05
    greedy_samples: int = 8  # calibration sequences the greedy search replays
    greedy_max: float = 0.9  # the greedy curve is computed up to this block sparsity (cached, reused by sweeps)
    kernel: str = "auto"  # auto: Triton kernel for single-row (decode) calls on CUDA; off: always PyTorch

    def check(self) -> None:
        if not 0.0 <= self.sparsity < 1.0:
            raise HarnessError(f"sparsity={self.sparsity!r} is outside [0, 1)")
        if self.kernel not in KERNEL_MODES:
            raise HarnessError(f"kernel={self.kernel!r} is not known; accepted: {', '.join(KERNEL_MODES)}")
        if self.allocation not in ALLOCATIONS:
            raise HarnessError(f"allocation={self.allocation!r} is not known; accepted: {', '.join(ALLOCATIONS)}")
        if self.allocation == "greedy" and self.sparsity > self.greedy_max:
            raise HarnessError(f"sparsity={self.sparsity} is above greedy_max={self.greedy_max}; raise greedy_max")


THRESHOLD_SOURCES = ("sparse", "dense")


@dataclass(frozen=True)
class ThresholdConfig(SparsityConfig):
    """For methods with calibrated thresholds: ``sparse`` re-calibrates them layer by layer on the sparsified
    upstream (measured sparsity then matches the target); ``dense`` keeps thresholds from the dense model's
    activations, as TEAL's reference does (the measured sparsity then overshoots at high targets)."""

    thresholds_from: str = "sparse"

    def check(self) -> None:
        super().check()
        if self.thresholds_from not in THRESHOLD_SOURCES:
            raise HarnessError(f"thresholds_from={self.thresholds_from!r} is not known; accepted: {', '.join(THRESHOLD_SOURCES)}")


class NotReachable(HarnessError):
    """A method cannot reach the requested model-level sparsity (CATS above its MLP share): n/a, not a crash."""


class Method:
    name: ClassVar[str]
    config_cls: ClassVar[type[SparsityConfig]]
    gates_activations: ClassVar[bool] = False  # CATS: gate the MLP activation instead of projection inputs
    needs_samples: ClassVar[bool] = False

    def __init__(self, config: SparsityConfig) -> None:
        self.config = config

    def prepare_(self, model: nn.Module, targets: list[Target]) -> dict:
        """Change the model before gating (e.g. WINA's transform); returns facts for the record."""
        return {}

    def make_gate(self, target: Target, sample: torch.Tensor | None) -> Gate:
        raise NotImplementedError

    def uniform_levels(self, targets: list[Target], sparsity: float, params: dict[str, int]) -> dict[str, float]:
        return {t.key: sparsity for t in targets}

    def calibration_fields(self) -> dict:
        """Config fields that change calibration results (sparsity does not: one calibration per sweep)."""
        return {k: v for k, v in dataclasses.asdict(self.config).items() if k != "sparsity"}


METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    METHODS[cls.name] = cls
    return cls


def method_names() -> list[str]:
    _discover()
    return sorted(METHODS)


def _discover() -> None:
    import baselines
    import wina.method  # noqa: F401

    for mod in pkgutil.iter_modules(baselines.__path__):
        importlib.import_module(f"baselines.{mod.name}")


def build_config(name: str, fields: dict) -> SparsityConfig:
    _discover()
    if name not in METHODS:
        raise HarnessError(f"unknown method {name!r}; accepted: dense, {', '.join(sorted(METHODS))}")
    cls = METHODS[name].config_cls
    known = {f.name for f in dataclasses.fields(cls)}
    bad = sorted(set(fields) - known)
    if bad:
        raise HarnessError(f"method {name} has no option {bad[0]!r}; accepted: {', '.join(sorted(known))}")
    cfg = cls(**fields)
    cfg.check()
    return cfg


@dataclass
class Sparsified:
    """What ``sparsify_`` installed: the gated modules, their targets, and measurement helpers."""

    method: Method
    targets: list[Target]
    modules: dict[str, Counter]
    levels: dict[str, float] = field(default_factory=dict)
    facts: dict = field(default_factory=dict)
    not_reachable: str | None = None

    def reset_counts(self) -> None:
        for m in self.modules.values():
            m.reset_counts()

    def measured(self, model: nn.Module) -> dict:
        """Parameter-weighted skipped fraction over all projections of all layers, overall and per kind."""
        params = block_params(model)
        total = sum(params.values()) * len(decoder_layers(model))
        skipped = 0.0
        per_kind: dict[str, list[float]] = {}
        for t in self.targets:
            m = self.modules[t.key]
            if m.measured is None:
                continue
            skipped += m.measured * t.in_features * t.params_per_channel
            per_kind.setdefault(t.kind, []).append(m.measured)
        seen = any(m.seen for m in self.modules.values())
        return {
            "overall": skipped / total if seen else None,
            "per_kind": {k: sum(v) / len(v) for k, v in per_kind.items()},
            "target": self.method.config.sparsity,
        }


def _fingerprint(model: nn.Module, extra: dict) -> str:
    h = hashlib.sha256(json.dumps(extra, sort_keys=True, default=str).encode())
    h.update(json.dumps(model.config.to_dict(), sort_keys=True, default=str).encode())
    for p in list(model.parameters())[:: max(1, len(list(model.parameters())) // 16)]:
        h.update(p.detach().flatten()[:256].float().cpu().numpy().tobytes())
    return h.hexdigest()[:20]


def _targets(model: nn.Module, method: Method) -> list[Target]:
    return activation_targets(model) if method.gates_activations else linear_targets(model)


def _install(targets: list[Target], gates: dict[str, Gate], dense_prefix: float, kernel: str = "off") -> dict[str, Counter]:
    modules = {}
    for t in targets:
        if t.kind == "act":
            new = GatedActivation(t.module, gates[t.key], dense_prefix)
        else:
            new = GatedLinear(t.module, gates[t.key], dense_prefix, kernel)
        setattr(t.parent, t.attr, new)
        modules[t.key] = new
    return modules


class _CalibrationCache:
    """What a method calibrated (activation samples, greedy curves), keyed by what determines it."""

    def __init__(self, model, method: Method, tokens: torch.Tensor, calibration: CalibrationConfig,
                 cache_dir: Path | None) -> None:
        key = _fingerprint(model, {"method": method.name, **method.calibration_fields(),
                                   "calibration": dataclasses.asdict(calibration),
                                   "tokens": hashlib.sha256(tokens.numpy().tobytes()).hexdigest()})
        self.file = None if cache_dir is None else Path(cache_dir) / "calibration" / f"{method.name}-{key}.pt"
        self.state = torch.load(self.file, map_location="cpu", weights_only=True) if self.file and self.file.exists() else {}
        self.dirty = False

    def get(self, name: str, compute):
        if name not in self.state:
            self.state[name] = compute()
            self.dirty = True
        return self.state[name]

    def save(self) -> None:
        if self.file is None or not self.dirty:
            return
        self.file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.file.parent, prefix=f".{self.file.name}.", suffix=".part")
        os.close(fd)  # a private temp name: parallel sweep jobs may write the same entry at once
        torch.save(self.state, tmp)
        os.replace(tmp, self.file)


def _greedy_curves(model, targets: list[Target], gates: dict[str, Gate], tokens: torch.Tensor,
                   config: SparsityConfig, params: dict[str, int]):
    """TEAL's greedy search per layer, replaying each layer on its dense inputs with the method's own gates."""
    n = min(config.greedy_samples, tokens.shape[0])
    inputs, kwargs = capture_layer_io(model, tokens[:n], batch_size=n)  # one replay per trial
    modules = _install(targets, gates, 0.0)
    try:
        by_layer = [{t.kind: gates[t.key] for t in targets if t.layer == i} for i in range(len(inputs))]
        return allocate.greedy_curves(decoder_layers(model), by_layer, inputs, kwargs, params,
                                      config.greedy_step, config.greedy_max)
    finally:  # uninstall: the caller installs the gates for evaluation (with the dense prefix)
        for t, m in zip(targets, modules.values()):
            setattr(t.parent, t.attr, _unwrap(m))


@torch.no_grad()
def sparsify_(model: nn.Module, config: SparsityConfig, calibration_tokens: torch.Tensor | None = None,
              cache_dir: Path | None = None, calibration: CalibrationConfig = CalibrationConfig()) -> Sparsified:
    """Sparsify ``model`` in place as ``config`` says. Calibration (if the method needs it) is cached per
    (model, method options, calibration data) in ``cache_dir``, so a sweep over sparsities calibrates once."""
    _discover()
    config.check()
    method = next(m for m in METHODS.values() if m.config_cls is type(config))(config)
    targets = _targets(model, method)
    params = block_params(model)
    if config.allocation == "uniform":  # before any work: CATS refuses unreachable targets here
        levels = method.uniform_levels(targets, config.sparsity, params)
    facts = method.prepare_(model, targets)
    targets = _targets(model, method)  # prepare_ may have replaced modules

    needs_calib = method.needs_samples or config.allocation == "greedy"
    if needs_calib and calibration_tokens is None:
        raise HarnessError(f"method {method.name} with allocation={config.allocation} needs calibration tokens")
    cache = _CalibrationCache(model, method, calibration_tokens, calibration, cache_dir) if needs_calib else None
    samples = {}
    if method.needs_samples:
        samples = cache.get("samples", lambda: collect_samples(model, targets, calibration_tokens,
                                                               calibration.samples_per_target, calibration.seed))
    gates = {t.key: method.make_gate(t, samples.get(t.key)) for t in targets}
    dev = next(model.parameters()).device
    for g in gates.values():
        g.to(dev)
    if config.allocation == "greedy":
        curves = cache.get("curves", lambda: _greedy_curves(model, targets, gates, calibration_tokens, config, params))
        levels = {t.key: allocate.pick(curves[t.layer], config.sparsity, params)[t.kind] for t in targets}
    if cache is not None:
        cache.save()

    for k, g in gates.items():
        g.set_level(levels[k])
    modules = _install(targets, gates, config.dense_prefix, config.kernel)
    if method.needs_samples and getattr(config, "thresholds_from", "dense") == "sparse" and config.sparsity > 0:
        sequential_samples_(model, targets, gates, calibration_tokens, calibration.samples_per_target, calibration.seed)
    return Sparsified(method=method, targets=targets, modules=modules, levels=levels, facts=facts)


def _unwrap(m: nn.Module) -> nn.Module:
    if isinstance(m, GatedActivation):
        return m.act
    lin = nn.Linear(m.in_features, m.out_features, bias=m.bias is not None, device="meta")
    lin.weight, lin.bias = m.weight, m.bias
    return lin

