import pytest

from wina.allocate import block_sparsity, greedy_curve, pick

PARAMS = {"a": 100, "b": 300, "c": 600}


def test_greedy_prefers_cheap_projections_and_pick_hits_target():
    cost = {"a": 10.0, "b": 1.0, "c": 0.1}  # error per unit of level

    def error_of(levels):
        return sum(cost[k] * levels[k] ** 2 for k in levels)

    curve = greedy_curve(error_of, PARAMS, step=0.05, max_sparsity=0.8)
    assert [s for s, _ in curve] == sorted(s for s, _ in curve)
    lv = pick(curve, 0.5, PARAMS)
    assert block_sparsity(lv, PARAMS) == pytest.approx(0.5)
    assert lv["c"] > lv["b"] > lv["a"]  # the cheapest, largest projection is sparsified most
    assert pick(curve, 0.0, PARAMS) == {"a": 0.0, "b": 0.0, "c": 0.0}
    with pytest.raises(ValueError, match="beyond the greedy curve"):
        pick(curve, 0.95, PARAMS)


def test_greedy_on_tiny_model_meets_block_target(tiny):
    import copy

    import torch

    from wina import build_config, sparsify_

    model = copy.deepcopy(tiny.model)
    tokens = torch.randint(0, 256, (4, 64))
    sp = sparsify_(model, build_config("wina", dict(sparsity=0.5, allocation="greedy", greedy_samples=4)), tokens)
    params = {t.kind: t.in_features * t.params_per_channel for t in sp.targets if t.layer == 0}
    for layer in range(2):
        lv = {t.kind: sp.levels[t.key] for t in sp.targets if t.layer == layer}
        assert block_sparsity(lv, params) == pytest.approx(0.5, abs=1e-6)
        assert len(set(lv.values())) > 1  # a non-uniform split


def test_calibration_is_cached_across_sparsities(tiny, tmp_path, monkeypatch):
    import copy

    import torch

    from wina import api, build_config, sparsify_

    tokens = torch.randint(0, 256, (4, 64))
    cfg = dict(allocation="greedy", greedy_samples=2, greedy_step=0.1)
    sparsify_(copy.deepcopy(tiny.model), build_config("teal", {**cfg, "sparsity": 0.25}), tokens, cache_dir=tmp_path)
    (entry,) = (tmp_path / "calibration").glob("teal-*.pt")
    stamp = entry.stat().st_mtime_ns
    monkeypatch.setattr(api, "collect_samples", lambda *a, **k: pytest.fail("samples recomputed"))
    monkeypatch.setattr(api, "_greedy_curves", lambda *a, **k: pytest.fail("greedy search rerun"))
    sp = sparsify_(copy.deepcopy(tiny.model), build_config("teal", {**cfg, "sparsity": 0.5}), tokens, cache_dir=tmp_path)
    assert entry.stat().st_mtime_ns == stamp  # loaded, not rewritten
    assert sp.levels and max(sp.levels.values()) > 0
