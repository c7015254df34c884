import copy

import pytest
import torch

from wina.allocate import block_sparsity, greedy_curve, pick

PARAMS = {"a": 100, "b": 300, "c": 600}


def test_greedy_prefers_cheap_projections_and_pick_hits_target():
    cost = {"a": 10.0, "b": 1.0, "c": 0.1}  # error per unit of level

    def errors_of(trials):
        return [sum(cost[k] * levels[k] ** 2 for k in levels) for levels in trials]

    curve = greedy_curve(errors_of, PARAMS, step=0.05, max_sparsity=0.8)
    assert [s for s, _ in curve] == sorted(s for s, _ in curve)
    lv = pick(curve, 0.5, PARAMS)
    assert block_sparsity(lv, PARAMS) == pytest.approx(0.5)
    assert lv["c"] > lv["b"] > lv["a"]  # the cheapest, largest projection is sparsified most
    assert pick(curve, 0.0, PARAMS) == {"a": 0.0, "b": 0.0, "c": 0.0}
    with pytest.raises(ValueError, match="beyond the greedy curve"):
        pick(curve, 0.95, PARAMS)


def test_greedy_on_tiny_model_meets_block_target(tiny):
    from wina import build_config, sparsify_

    model = copy.deepcopy(tiny.model)
    tokens = torch.randint(0, 256, (4, 64))
    sp = sparsify_(model, build_config("wina", dict(sparsity=0.5, allocation="greedy", greedy_samples=4)), tokens)
    params = {t.kind: t.in_features * t.params_per_channel for t in sp.targets if t.layer == 0}
    for layer in range(2):
        lv = {t.kind: sp.levels[t.key] for t in sp.targets if t.layer == layer}
        assert block_sparsity(lv, params) == pytest.approx(0.5, abs=1e-6)
        assert len(set(lv.values())) > 1  # a non-uniform split
