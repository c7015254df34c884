"""``sparsify_``'s contracts for every method on SmolLM2's real weights (method-specific rules: their own files)."""

import pytest
import torch

from wina import SparsityError, build_config, sparsify_
from wina.calibrate import CalibrationConfig
from wina.gated import GatedActivation

CALIB = CalibrationConfig(n_samples=16, seq_len=128, samples_per_target=65536)


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


def _gate_inputs(sp):
    """Hooks recording what each gate sees (a projection's input; CATS: the activation's output)."""
    seen, hooks = {}, []
    for key, m in sp.modules.items():
        if isinstance(m, GatedActivation):
            hooks.append(m.act.register_forward_hook(lambda mod, a, out, k=key: seen.setdefault(k, out)))
        else:
            hooks.append(m.register_forward_pre_hook(lambda mod, a, k=key: seen.setdefault(k, a[0])))
    return seen, hooks


@pytest.mark.real
@pytest.mark.parametrize("name,fields", [
    ("wina", dict(transform=False, allocation="uniform")),
    ("wina", dict(transform=False, allocation="uniform", weight_informed="all")),
    ("teal", dict(allocation="uniform")),
    ("cats", dict()),
    ("rsparse", dict(alpha={"attn": 0.9, "mlp": 1.0})),
])
def test_sparsity_zero_reproduces_dense_logits_exactly(smollm2, fresh_smollm2, calib_tokens, heldout_tokens, name, fields):
    ref = _logits(smollm2.model, heldout_tokens[:2])
    sp = sparsify_(fresh_smollm2, build_config(name, {**fields, "sparsity": 0.0}), calib_tokens, calibration=CALIB)
    assert len(sp.modules) > 0
    seen, hooks = _gate_inputs(sp)
    out = _logits(fresh_smollm2, heldout_tokens[:2])
    for h in hooks:
        h.remove()
    assert torch.equal(out, ref)
    # the masks were computed at level 0 and keep every channel of the real activations
    assert len(seen) == len(sp.modules)
    for key, x in seen.items():
        assert sp.modules[key].gate.mask(x).all(), key
    assert sp.measured(fresh_smollm2).overall == 0.0


def test_methods_that_calibrate_ask_for_tokens(tiny):
    import copy

    with pytest.raises(SparsityError, match="needs calibration tokens"):
        sparsify_(copy.deepcopy(tiny.model), build_config("teal", dict(sparsity=0.5, allocation="uniform")))


def test_calibration_is_cached_across_sparsities(tiny, tmp_path, monkeypatch):
    """A sparser job's calibration serves a less sparse one with another token policy: no samples, no search."""
    import copy

    from wina import allocate, api

    tokens = torch.randint(0, 256, (4, 64))
    cfg = dict(allocation="greedy", greedy_samples=2, greedy_step=0.1)
    sparsify_(copy.deepcopy(tiny.model), build_config("teal", {**cfg, "sparsity": 0.5}), tokens, cache_dir=tmp_path)
    (entry,) = (tmp_path / "calibration").glob("teal-*.pt")
    stamp = entry.stat().st_mtime_ns
    monkeypatch.setattr(api, "collect_samples", lambda *a, **k: pytest.fail("samples recomputed"))
    monkeypatch.setattr(allocate, "LayerReplay", lambda *a, **k: pytest.fail("greedy search rerun"))
    sp = sparsify_(copy.deepcopy(tiny.model), build_config("teal", {**cfg, "sparsity": 0.25, "dense_prefix": 0.5}),
                   tokens, cache_dir=tmp_path)  # another target and token policy: the same calibration
    assert entry.stat().st_mtime_ns == stamp  # loaded, not rewritten
    assert sp.levels and max(sp.levels.values()) > 0
