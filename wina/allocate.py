"""Per-layer sparsity allocation: uniform, or TEAL's greedy block-wise search.

Greedy, per decoder layer: start every projection at level 0; repeatedly raise the level of the one
projection whose ``step`` costs the least extra block-output error per parameter skipped; record the curve of
(block sparsity, levels). Block sparsity is parameter-weighted over the layer's projections. At evaluation every
layer gets the same block sparsity (the target) and only the split across its projections varies: the
curve is interpolated so that the target is met exactly.
"""

from __future__ import annotations

from typing import Callable

import torch
from tqdm.auto import tqdm

from wina.calibrate import first_output

Curve = list[tuple[float, dict[str, float]]]


def block_sparsity(levels: dict[str, float], params: dict[str, int]) -> float:
    total = sum(params.values())
    return sum(levels[k] * params[k] for k in levels) / total


def greedy_curve(error_of: Callable[[dict[str, float]], float], params: dict[str, int], step: float,
                 max_sparsity: float, max_level: float = 0.99) -> Curve:
    """Greedy path from all-dense up to ``max_sparsity`` block sparsity."""
    levels = {k: 0.0 for k in params}
    curve: Curve = [(0.0, dict(levels))]
    current = error_of(levels)
    total = sum(params.values())
    while block_sparsity(levels, params) < max_sparsity:
        best = None
        for k in params:
            new = min(levels[k] + step, max_level)
            if new <= levels[k]:
                continue
            trial = {**levels, k: new}
            err = error_of(trial)
            cost = (err - current) / ((new - levels[k]) * params[k] / total)
            if best is None or cost < best[0]:
                best = (cost, k, new, err)
        if best is None:
            break
        _, k, new, current = best
        levels[k] = new
        curve.append((block_sparsity(levels, params), dict(levels)))
    return curve


def pick(curve: Curve, target: float, params: dict[str, int]) -> dict[str, float]:
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


@torch.no_grad()
def layer_error_fn(layer, gates: dict, inputs: list[torch.Tensor], kwargs: list[dict], tail: float = 0.25):
    """``levels -> relative error`` of a layer's output on the last ``tail`` of the positions."""
    dense = []
    for g in gates.values():
        g.set_level(0.0)
    for x, kw in zip(inputs, kwargs):
        dense.append(first_output(layer(x, **kw)))

    @torch.no_grad()
    def error_of(levels: dict[str, float]) -> float:
        for k, g in gates.items():
            g.set_level(levels[k])
        num = den = 0.0
        for x, kw, y in zip(inputs, kwargs, dense):
            start = int(y.shape[-2] * (1 - tail))
            d = (first_output(layer(x, **kw)) - y)[..., start:, :].float()
            num += float(d.pow(2).sum())
            den += float(y[..., start:, :].float().pow(2).sum())
        return num / max(den, 1e-30)

    return error_of



def greedy_curves(layers, gates_per_layer: list[dict], inputs, kwargs, params: dict[str, int], step: float,
                  max_sparsity: float) -> list[Curve]:
    curves = []
    for i, layer in enumerate(tqdm(layers, desc="calibrate: greedy allocation", unit="layer")):
        err = layer_error_fn(layer, gates_per_layer[i], inputs[i], kwargs)
        curves.append(greedy_curve(err, params, step, max_sparsity))
        for g in gates_per_layer[i].values():
            g.set_level(0.0)
    return curves
