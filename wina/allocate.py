"""Per-layer sparsity allocation: uniform, or TEAL's greedy block-wise search.

Greedy, per decoder layer: start every projection at level 0; repeatedly raise the level of the one
projection whose ``step`` costs the least extra block-output error per parameter skipped; record the curve of
(block sparsity, levels). Block sparsity is parameter-weighted over the layer's projections. At evaluation every
layer gets the same block sparsity (the target) and only the split across its projections varies: the
curve is interpolated so that the target is met exactly. The search stops once the curve reaches the target; a
sparser job later goes on from the curve's last point (the path does not depend on where it stops).

The error of a trial is the relative error of the layer's output on the last ``TAIL`` of the positions.
``LayerReplay`` computes it without replaying the whole layer for every trial: each stage's output (the MLP's norm
too) is kept under the levels it depends on (``DEPENDS``) and reused while they stay the same; o_proj and the MLP
(per position) run on the tail positions only; on a GPU the trials of one step run as one batch. The layer runs as
its own modules (``self_attn`` for the attention, the layer's forward with the attention output given for the rest,
its attention norm skipped), with the gated projections and the MLP's norm stood in for by the memo: nothing of an
architecture is reimplemented.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from wina.calibrate import call_of, first_output
from wina.gated import GatedLinear
from wina.errors import SparsityError
from wina.targets import KINDS, PROJECTIONS, SUPPORTED

Curve = list[tuple[float, dict[str, float]]]
Levels = dict[str, float]
ErrorsOf = Callable[[list[Levels]], list[float]]  # trials (levels of every projection) -> their errors

TAIL = 0.25  # the error is measured on this last fraction of each sequence's positions
MAX_LEVEL = 0.99  # no projection is raised beyond this level
ATTN_CORE = "attention"  # self_attn's output before o_proj
MLP_NORM = "mlp_norm"  # the norm the MLP reads (rotated by WINA's transform)
DEPENDS = {  # what a stage's output depends on: the levels of the projections upstream of it, its own included
    "q": ("q",), "k": ("k",), "v": ("v",),
    ATTN_CORE: ("q", "k", "v"),
    "o": ("q", "k", "v", "o"),
    MLP_NORM: ("q", "k", "v", "o"),
    "gate": ("q", "k", "v", "o", "gate"),
    "up": ("q", "k", "v", "o", "up"),
    "down": KINDS,
}


def block_sparsity(levels: Levels, params: dict[str, int]) -> float:
    total = sum(params.values())
    return sum(levels[k] * params[k] for k in levels) / total


def _raises(levels: Levels, params: dict[str, int], step: float, max_level: float) -> list[tuple[str, float]]:
    """Every projection that can still be raised, and its level one step up."""
    out = []
    for k in params:
        new = min(levels[k] + step, max_level)
        if new > levels[k]:
            out.append((k, new))
    return out


def greedy_curve(errors_of: ErrorsOf, params: dict[str, int], step: float, max_sparsity: float,
                 max_level: float = MAX_LEVEL, start: Curve = ()) -> Curve:
    """Greedy path from all-dense (or from the last point of ``start``, a curve this search made before) up to
    ``max_sparsity`` block sparsity; ``errors_of`` gets the trials of one step (the current levels with one
    projection raised) together. Ties go to the first projection of ``params``. The path does not depend on
    ``max_sparsity``: a curve stopped at 0.65 and extended to 0.9 is the curve made to 0.9 at once."""
    curve: Curve = list(start) or [(0.0, {k: 0.0 for k in params})]
    levels = dict(curve[-1][1])
    (current,) = errors_of([levels])
    total = sum(params.values())
    while block_sparsity(levels, params) < max_sparsity:
        raises = _raises(levels, params, step, max_level)
        if not raises:
            break
        errors = errors_of([{**levels, k: new} for k, new in raises])
        costs = [(err - current) / ((new - levels[k]) * params[k] / total) for (k, new), err in zip(raises, errors)]
        best = min(range(len(costs)), key=costs.__getitem__)
        k, new = raises[best]
        levels[k], current = new, errors[best]
        curve.append((block_sparsity(levels, params), dict(levels)))
    return curve


def reaches(curve: Curve, target: float, max_level: float = MAX_LEVEL) -> bool:
    """Whether ``pick`` can read ``target`` off ``curve`` (or the search can go no further)."""
    return curve[-1][0] >= target or all(lv >= max_level for lv in curve[-1][1].values())


def pick(curve: Curve, target: float, params: dict[str, int]) -> Levels:
    """Levels on the curve whose block sparsity equals ``target`` (linear between the two points around it)."""
    if target <= 0:
        return {k: 0.0 for k in params}
    for (s0, lv0), (s1, lv1) in zip(curve, curve[1:]):
        if s0 <= target <= s1:
            changed = [k for k in params if lv1[k] != lv0[k]]
            out = dict(lv0)
            for k in changed:  # one projection changes per step
                out[k] = lv0[k] + (target - s0) * sum(params.values()) / params[k]
                out[k] = min(out[k], lv1[k])
            return out
    raise ValueError(f"target sparsity {target} is beyond the greedy curve (max {curve[-1][0]:.3f}); "
                     f"raise method.greedy_max")


class _Memo:
    """Stage outputs keyed by the stage and the levels it depends on: the same key is the same computation."""

    def __init__(self) -> None:
        self.outputs: dict[tuple, torch.Tensor] = {}

    @staticmethod
    def key(stage: str, levels: Levels) -> tuple:
        return stage, tuple(levels[k] for k in DEPENDS[stage])

    def prune(self, floor: Levels) -> None:
        """Drop what no later trial can ask for: levels only grow, so a key below ``floor`` anywhere is dead."""
        self.outputs = {key: out for key, out in self.outputs.items()
                        if all(lv >= floor[k] for k, lv in zip(DEPENDS[key[0]], key[1]))}


class _Recall(nn.Module):
    """Stands in for a stage's module (a gated projection, or the MLP's norm) while a replay runs. Its input is one
    chunk per trial (``trials``, set before each call); a chunk's output is recalled where the stage already ran at
    the trial's levels, the rest runs through the module: a gated projection once per level, set to it."""

    def __init__(self, stage: str, module: nn.Module, memo: _Memo) -> None:
        super().__init__()
        self.stage, self.module, self.memo = stage, module, memo
        self.trials: list[Levels] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keys = [self.memo.key(self.stage, t) for t in self.trials]
        todo: dict[float | None, dict[tuple, int]] = {}  # level (None: not gated) -> key -> the trial whose chunk it is
        for i, key in enumerate(keys):
            if key not in self.memo.outputs:
                todo.setdefault(self.trials[i].get(self.stage), {}).setdefault(key, i)
        chunks = x.chunk(len(keys)) if todo else []
        for level, firsts in todo.items():
            if level is not None:
                self.module.gate.set_level(level)
            inputs = x if len(firsts) == len(keys) else _stack([chunks[i] for i in firsts.values()])
            self.memo.outputs.update(zip(firsts, self.module(inputs).chunk(len(firsts))))
        return _stack([self.memo.outputs[key] for key in keys])


def _stack(chunks: list[torch.Tensor]) -> torch.Tensor:
    """The chunks concatenated along the batch (a single one as it is: no copy)."""
    return chunks[0] if len(chunks) == 1 else torch.cat(chunks)


class _Fixed(nn.Module):
    """Returns ``output`` whatever it is called with (an attention output the replay already has)."""

    def __init__(self, output) -> None:
        super().__init__()
        self.output = output

    def forward(self, *args, **kwargs):
        return self.output


def _repeated(args, n: int, batch: int):
    """``args`` (tensors, or tuples, lists and dicts of them) for ``n`` copies of the batch: each tensor of two or more
    dimensions whose first is the batch (``batch`` long) repeated ``n`` times along it; the rest (one-dimensional,
    broadcast over the batch, not tensors) as it is."""
    if isinstance(args, torch.Tensor):
        return args.repeat(n, *[1] * (args.dim() - 1)) if args.dim() >= 2 and args.shape[0] == batch else args
    if isinstance(args, (tuple, list)):
        return type(args)(_repeated(a, n, batch) for a in args)
    if isinstance(args, dict):
        return {k: _repeated(v, n, batch) for k, v in args.items()}
    return args


@contextmanager
def _standing_in(replacements: list[tuple[nn.Module, str, nn.Module]]):
    """``setattr(parent, name, module)`` for each replacement while the block runs; then the originals again."""
    originals = [(parent, name, getattr(parent, name)) for parent, name, _ in replacements]
    try:
        for parent, name, module in replacements:
            setattr(parent, name, module)
        yield
    finally:
        for parent, name, module in originals:
            setattr(parent, name, module)


class LayerReplay:
    """A decoder layer's output on the last ``TAIL`` of the positions of its dense input ``x`` (one batch), at any
    levels of its seven gated projections (``gated``: kind -> the ``GatedLinear`` installed in the layer), as
    ``errors``: the relative error against all levels 0, for the trials of one greedy step at once.

    Stages and what they run on: q, k, v (every position; their input never changes); the attention core
    (``self_attn`` with q/k/v recalled and o_proj left out, every position, then cut to the tail); o_proj, and the
    rest of the layer with the attention output given (tail positions; gate/up/down recalled). A stage's output is
    reused while the levels in ``DEPENDS`` are the same: exact, since the same key is the same computation on the
    same input. The trials that run together (``_groups``) are stacked along the batch."""

    @torch.no_grad()
    def __init__(self, layer: nn.Module, gated: dict[str, GatedLinear], x: torch.Tensor, kwargs: dict) -> None:
        self.layer, self.kwargs = layer, kwargs
        self.start = int(x.shape[-2] * (1 - TAIL))
        self.x_tail, self.batch = x[:, self.start:], x.shape[0]
        self.memo = _Memo()
        self.recalls = {kind: _Recall(kind, gated[kind], self.memo) for kind in KINDS}
        attn_norm, mlp_norm = _norms(layer)
        self.recalls[MLP_NORM] = _Recall(MLP_NORM, getattr(layer, mlp_norm), self.memo)
        # the tail runs with the attention output given: the attention's norm feeds nothing then
        self.skipped = [(layer, attn_norm, nn.Identity()), (layer, mlp_norm, self.recalls[MLP_NORM])]
        self.attn_args, self.attn_kwargs = call_of(layer.self_attn, lambda: layer(x, **kwargs))
        self.dense = self._outputs([{k: 0.0 for k in KINDS}])
        self.dense_energy = float(self.dense.float().pow(2).sum())

    @torch.no_grad()
    def errors(self, trials: list[Levels]) -> list[float]:
        self.memo.prune({k: min(t[k] for t in trials) for k in KINDS})
        y = torch.cat([self._outputs(group) for group in self._groups(trials)]).unflatten(0, (len(trials), -1))
        d = y.sub_(self.dense).float()  # y is this call's own tensor (cat's): in place
        sq = d.mul_(d).sum(dim=tuple(range(1, y.dim())))
        return [s / max(self.dense_energy, 1e-30) for s in sq.tolist()]

    def _groups(self, trials: list[Levels]) -> list[list[Levels]]:
        """The trials that run as one batch: all of a step's on a GPU (a launch per stage, not per trial), one at a
        time on a CPU (there, stacking the trials' tensors costs more than the calls it saves)."""
        return [trials] if self.x_tail.is_cuda else [[t] for t in trials]

    def _replacing(self, kinds: tuple[str, ...], trials: list[Levels]) -> list[tuple[nn.Module, str, nn.Module]]:
        out = []
        for kind in kinds:
            sub, attr, _ = PROJECTIONS[kind]
            self.recalls[kind].trials = trials
            out.append((getattr(self.layer, sub), attr, self.recalls[kind]))
        return out

    def _attention(self, trials: list[Levels]) -> list[torch.Tensor]:
        """Each trial's attention core output on the tail positions (before o_proj); those not in the memo are
        computed in one call of ``self_attn``, its arguments repeated along the batch for them."""
        keys = [self.memo.key(ATTN_CORE, t) for t in trials]
        todo = {key: trial for key, trial in zip(keys, trials) if key not in self.memo.outputs}
        if todo:
            attn, n = self.layer.self_attn, len(todo)
            args, kwargs = _repeated((self.attn_args, self.attn_kwargs), n, self.batch)
            stand_ins = self._replacing(("q", "k", "v"), list(todo.values())) + [(attn, "o_proj", nn.Identity())]
            with _standing_in(stand_ins):
                out = first_output(attn(*args, **kwargs))
            self.memo.outputs.update(zip(todo, out[:, self.start:].chunk(n)))
        return [self.memo.outputs[key] for key in keys]

    def _outputs(self, trials: list[Levels]) -> torch.Tensor:
        """The layer's tail output of every trial, stacked along the batch."""
        self.recalls["o"].trials = self.recalls[MLP_NORM].trials = trials
        attended = self.recalls["o"](_stack(self._attention(trials)))
        with _standing_in(self._replacing(("gate", "up", "down"), trials) + self.skipped
                          + [(self.layer, "self_attn", _Fixed((attended, None)))]):
            return first_output(self.layer(self.x_tail.repeat(len(trials), 1, 1), **self.kwargs))


def _norms(layer: nn.Module) -> tuple[str, str]:
    """The names of the layer's attention norm and MLP norm (``wina.targets.SUPPORTED``, by the model type its
    attention's config names)."""
    model_type = getattr(getattr(layer.self_attn, "config", None), "model_type", None)
    if model_type not in SUPPORTED:
        raise SparsityError(f"{type(layer).__name__}: model type {model_type!r} is not supported by the greedy search")
    return SUPPORTED[model_type]


def greedy_curves(layers, gated_per_layer: list[dict[str, GatedLinear]], inputs: list[torch.Tensor],
                  kwargs: list[dict], params: dict[str, int], step: float, max_sparsity: float,
                  start: list[Curve] = (),
                  on_layer: Callable[[list[Curve]], None] = lambda curves: None) -> list[Curve]:
    """One curve per layer, reaching ``max_sparsity``. ``start``: curves this search made before (the first layers'
    or every layer's, up to some sparsity): one that reaches ``max_sparsity`` is kept, a shorter one extended, a
    missing one made; ``on_layer(curves so far)`` after each layer."""
    curves: list[Curve] = []
    for i in tqdm(range(len(layers)), desc="calibrate: greedy allocation", unit="layer"):
        before = start[i] if i < len(start) else ()
        if before and reaches(before, max_sparsity):
            curves.append(before)
        else:
            replay = LayerReplay(layers[i], gated_per_layer[i], inputs[i], kwargs[i])
            curves.append(greedy_curve(replay.errors, params, step, max_sparsity, start=before))
        on_layer(curves)
    return curves
