"""The one public entry: ``sparsify_(model, config, calibration_tokens)`` for every method.

A method (``wina.registry.Method``) is a small class with a frozen config that says
- which targets it gates (projection inputs, or the MLP activation),
- whether it needs activation samples (quantile thresholds) from calibration,
- how to prepare the model (WINA's transform, R-Sparse's SVDs) and which gate each target gets,
- how a model-level target becomes per-target levels under uniform allocation.
Everything else (hooking, calibration, greedy allocation, counting) is shared and lives here and in the
modules it calls. The method is found by the config's type; its module must have been imported.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from wina import allocate
from wina.atomic import atomic_file
from wina.calibrate import CalibrationConfig, capture_layer_io, collect_samples, sequential_samples_, share_by_site
from wina.config import SparsityConfig
from wina.errors import SparsityError
from wina.gated import Counter, Gate, GatedActivation, GatedLinear, TokenPolicy
from wina.registry import Method, method_for
from wina.targets import Target, activation_targets, block_params, decoder_layers, linear_targets


@dataclass(frozen=True)
class MeasuredSparsity:
    """What a sparsified model skipped while it ran: parameter-weighted over all projections of all layers."""

    overall: float | None  # over the positions the token policy gates; None: nothing ran since the last reset
    per_kind: dict[str, float]  # mean over layers, per projection kind (or "act" for CATS), gated positions
    overall_all_positions: float | None  # over every position, dense prefixes included (what FLOPs count)
    target: float
    levels: dict[str, float]  # the level each target was set to ("<layer>.<kind>")
    facts: dict  # what the method's preparation reports (e.g. the transform and its cost)


class DenseState:
    """What a model holds before ``sparsify_`` changes it, so ``restore_`` puts it back exactly and cheaply: the
    child module under every attribute, and the tensor behind every parameter and buffer (references, not
    copies). Methods replace modules and rebind ``.data``; none writes into the model's tensors in place
    (``Method.prepare_``'s contract; tests compare the restored model's logits with a fresh one's, bit for bit)."""

    def __init__(self, model: nn.Module) -> None:
        self.children = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()]
        self.tensors = [(t, t.data) for t in [*model.parameters(), *model.buffers()]]

    @torch.no_grad()
    def restore_(self) -> None:
        for parent, name, child in self.children:
            if parent._modules.get(name) is not child:
                setattr(parent, name, child)
        for t, data in self.tensors:
            t.data = data


def is_sparsified(model: nn.Module) -> bool:
    return any(isinstance(m, (GatedLinear, GatedActivation)) for m in model.modules())


@dataclass
class Sparsified:
    """What ``sparsify_`` installed: the gated modules, their targets, and measurement helpers."""

    method: Method
    targets: list[Target]
    modules: dict[str, Counter]
    levels: dict[str, float] = field(default_factory=dict)
    facts: dict = field(default_factory=dict)
    dense: DenseState | None = None

    def restore_(self) -> None:
        """Undo ``sparsify_``: the model is the dense one again, with its own modules and weights (a sweep
        evaluates many configurations on one loaded model)."""
        if self.dense is None:
            raise SparsityError("this model was already restored")
        self.dense.restore_()
        self.dense, self.modules = None, {}

    def reset_counts(self) -> None:
        for m in self.modules.values():
            m.reset_counts()

    def set_counting(self, enabled: bool) -> None:
        """Counting costs two small device ops per gated call; timing runs switch it off."""
        for m in self.modules.values():
            m.counting = enabled

    def measured(self, model: nn.Module) -> MeasuredSparsity:
        params = block_params(model)
        total = sum(params.values()) * len(decoder_layers(model))
        skipped = skipped_all = 0.0
        per_kind: dict[str, list[float]] = {}
        seen = False
        for t in self.targets:
            module = self.modules[t.key]
            m = module.measured
            if m is None:
                continue
            seen = True
            skipped += m * t.in_features * t.params_per_channel
            skipped_all += module.measured_all_positions * t.in_features * t.params_per_channel
            per_kind.setdefault(t.kind, []).append(m)
        return MeasuredSparsity(overall=skipped / total if seen else None,
                                per_kind={k: sum(v) / len(v) for k, v in per_kind.items()},
                                overall_all_positions=skipped_all / total if seen else None,
                                target=self.method.config.sparsity, levels=dict(self.levels), facts=dict(self.facts))


def _fingerprint(model: nn.Module, extra: dict) -> str:
    h = hashlib.sha256(json.dumps(extra, sort_keys=True, default=str).encode())
    h.update(json.dumps(model.config.to_dict(), sort_keys=True, default=str).encode())
    for p in list(model.parameters())[:: max(1, len(list(model.parameters())) // 16)]:
        h.update(p.detach().flatten()[:256].float().cpu().numpy().tobytes())
    return h.hexdigest()[:20]


def _targets(model: nn.Module, method: Method) -> list[Target]:
    return activation_targets(model) if method.gates_activations else linear_targets(model)


def _install(targets: list[Target], gates: dict[str, Gate], tokens: TokenPolicy | None = None,
             kernel: str = "off") -> dict[str, Counter]:
    modules = {}
    for t in targets:
        if t.kind == "act":
            new = GatedActivation(t.module, gates[t.key], tokens, kernel)
        else:
            new = GatedLinear(t.module, gates[t.key], tokens, kernel)
        setattr(t.parent, t.attr, new)
        modules[t.key] = new
    return modules


def _unwrap(m: nn.Module) -> nn.Module:
    if isinstance(m, GatedActivation):
        return m.act
    lin = nn.Linear(m.in_features, m.out_features, bias=m.bias is not None, device="meta")
    lin.weight, lin.bias = m.weight, m.bias
    return lin


class _CalibrationCache:
    """What a method calibrated (activation samples, greedy curves), keyed by what determines it. A long computation
    saves its progress as it goes (``save_progress``); a rerun with the same key resumes from it (``progress``)."""

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
            self.put(name, compute())
        return self.state[name]

    def put(self, name: str, value) -> None:
        """``name`` is ``value`` now (complete: the progress saved on the way is dropped)."""
        self.state[name] = value
        self.state.pop(f"{name}.partial", None)
        self.dirty = True

    def progress(self, name: str) -> list:
        """The parts of ``name`` that an interrupted computation saved (none: empty)."""
        return list(self.state.get(f"{name}.partial", []))

    def save_progress(self, name: str, parts: list) -> None:
        """Save the parts of ``name`` computed so far (the file is rewritten whole, atomically)."""
        self.state[f"{name}.partial"] = list(parts)
        self.dirty = True
        self.save()

    def save(self) -> None:
        if self.file is None or not self.dirty:
            return
        with atomic_file(self.file, "wb") as fh:
            torch.save(self.state, fh)
        self.dirty = False


def _greedy_curves(model, targets: list[Target], gates: dict[str, Gate], tokens: torch.Tensor,
                   config: SparsityConfig, params: dict[str, int], cache: _CalibrationCache) -> list:
    """TEAL's greedy search per layer, replaying each layer on its dense inputs with the method's own gates, up to
    the target sparsity: the curves in ``cache`` are used as they are where they reach it, else extended (a sweep's
    later, sparser job goes on where the earlier one stopped). Each finished layer's curve is saved in ``cache``: an
    interrupted search resumes at the first layer it lacks."""
    if any(t.kind == "act" for t in targets):
        raise SparsityError("allocation=greedy splits a layer's sparsity across its projections; this method gates "
                            "the MLP activation only (use allocation=uniform)")
    made = cache.state.get("curves", [])
    if config.sparsity <= 0 or (made and all(allocate.reaches(curve, config.sparsity) for curve in made)):
        return made  # (at sparsity 0 every level is 0: no curve needed)
    partial = cache.progress("curves")  # an interrupted search's layers, then the curves made before
    start = partial + made[len(partial):]
    n = min(config.greedy_samples, tokens.shape[0])
    inputs, kwargs = capture_layer_io(model, tokens[:n], batch_size=n)  # one batch: a replay stacks trials on it
    modules = _install(targets, gates)  # every position gated: the search measures the tail of each sequence
    try:
        for m in modules.values():
            m.counting = False
        by_layer = [{t.kind: modules[t.key] for t in targets if t.layer == i} for i in range(len(inputs))]
        curves = allocate.greedy_curves(decoder_layers(model), by_layer, [x for x, in inputs],
                                        [kw for kw, in kwargs], params, config.greedy_step, config.sparsity,
                                        start=start, on_layer=lambda curves: cache.save_progress("curves", curves))
    finally:  # uninstall: the caller installs the gates for evaluation (with the dense prefix)
        for t, m in zip(targets, modules.values()):
            setattr(t.parent, t.attr, _unwrap(m))
    cache.put("curves", curves)
    return curves


@torch.no_grad()
def sparsify_(model: nn.Module, config: SparsityConfig, calibration_tokens: torch.Tensor | None = None,
              cache_dir: Path | None = None, calibration: CalibrationConfig = CalibrationConfig()) -> Sparsified:
    """Sparsify ``model`` in place as ``config`` says. Calibration (if the method needs it) is cached per
    (model, method options, calibration data) in ``cache_dir``, so a sweep over sparsities calibrates once.
    Raises ``NotReachable`` (before changing the model) where the method cannot reach the target."""
    config.check()
    if is_sparsified(model):
        raise SparsityError("the model is already sparsified; call restore_() on what sparsify_ returned first")
    method = method_for(config)
    targets = _targets(model, method)
    params = block_params(model)
    if config.allocation == "uniform":  # before any work: CATS refuses unreachable targets here
        levels = method.uniform_levels(targets, config.sparsity, params)
    dense = DenseState(model)
    try:
        return _sparsify(model, config, method, targets, params, levels if config.allocation == "uniform" else None,
                         calibration_tokens, cache_dir, calibration, dense)
    except BaseException:  # a failed or interrupted sparsify_ leaves the dense model, never a half-changed one
        dense.restore_()
        raise


def _sparsify(model, config, method, targets, params, levels, calibration_tokens, cache_dir, calibration,
              dense: DenseState) -> Sparsified:
    facts = method.prepare_(model, targets)
    targets = _targets(model, method)  # prepare_ may have replaced modules

    needs_calib = method.needs_samples or config.allocation == "greedy"
    if needs_calib and calibration_tokens is None:
        raise SparsityError(f"method {method.name} with mask={config.mask} and allocation={config.allocation} needs "
                            f"calibration tokens")
    cache = _CalibrationCache(model, method, calibration_tokens, calibration, cache_dir) if needs_calib else None
    samples = {}
    if method.needs_samples:
        samples = cache.get("samples", lambda: collect_samples(model, targets, calibration_tokens,
                                                               calibration.samples_per_target, calibration.seed))
        if config.threshold_rule == "histogram":
            samples = share_by_site(samples, targets)
    dev = next(model.parameters()).device
    samples = {k: v.to(dev) for k, v in samples.items()}  # a cache file's are on the CPU: sorted where the model is
    gates = {t.key: method.make_gate(t, samples.get(t.key)) for t in targets}
    for g in gates.values():
        g.to(dev)
    if config.allocation == "greedy":
        curves = _greedy_curves(model, targets, gates, calibration_tokens, config, params, cache)
        levels = {t.key: allocate.pick(curves[t.layer], config.sparsity, params)[t.kind] for t in targets}
    if cache is not None:
        cache.save()

    for k, g in gates.items():
        g.set_level(levels[k])
    modules = _install(targets, gates, TokenPolicy(config.dense_prefix, config.dense_prefix_rounding), config.kernel)
    if method.needs_samples and config.thresholds_from == "sparse" and config.sparsity > 0:
        sequential_samples_(model, targets, gates, calibration_tokens, calibration.samples_per_target, calibration.seed,
                            shared_sites=config.threshold_rule == "histogram")
    return Sparsified(method=method, targets=targets, modules=modules, levels=levels, facts=facts, dense=dense)
