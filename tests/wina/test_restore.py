"""``Sparsified.restore_``: after any method, the model is the dense one again, bit for bit (sweeps evaluate many
configurations on one loaded model)."""

import pytest
import torch

from wina import SparsityError, build_config, sparsify_
from wina.calibrate import CalibrationConfig

CALIB = CalibrationConfig(n_samples=4, seq_len=128, samples_per_target=16384)


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.real
@pytest.mark.parametrize("name,fields", [
    ("wina", dict(allocation="uniform")),  # transform: rotated readers, unit norms, RotatedNorm modules
    ("wina", dict(allocation="uniform", mask="threshold")),
    ("teal", dict(allocation="greedy", greedy_samples=1, greedy_step=0.3, greedy_max=0.6)),  # greedy swaps modules
    ("cats", dict(sparsity=0.4)),
    ("rsparse", dict(alpha={"attn": 0.9, "mlp": 1.0})),
])
def test_restore_gives_back_the_dense_model_exactly(smollm2, fresh_smollm2, calib_tokens, heldout_tokens, name, fields):
    ids = heldout_tokens[:2]
    ref, ref_state = _logits(smollm2.model, ids), _state(smollm2.model)
    modules_before = dict(fresh_smollm2.named_modules())
    sp = sparsify_(fresh_smollm2, build_config(name, {"sparsity": 0.5, **fields}), calib_tokens[:4], calibration=CALIB)
    assert not torch.equal(_logits(fresh_smollm2, ids), ref)  # the method did change the model
    sp.restore_()
    assert dict(fresh_smollm2.named_modules()).keys() == modules_before.keys()
    assert all(m is modules_before[k] for k, m in fresh_smollm2.named_modules())
    state = fresh_smollm2.state_dict()
    assert state.keys() == ref_state.keys() and all(torch.equal(state[k], ref_state[k]) for k in ref_state)
    assert torch.equal(_logits(fresh_smollm2, ids), ref)
    with pytest.raises(SparsityError, match="already restored"):
        sp.restore_()


def test_a_sparsified_model_is_not_sparsified_twice(tiny):
    import copy

    model = copy.deepcopy(tiny.model)
    sp = sparsify_(model, build_config("wina", dict(sparsity=0.5, allocation="uniform", transform=False)))
    with pytest.raises(SparsityError, match="already sparsified"):
        sparsify_(model, build_config("wina", dict(sparsity=0.5, allocation="uniform", transform=False)))
    sp.restore_()
    sparsify_(model, build_config("wina", dict(sparsity=0.25, allocation="uniform", transform=False))).restore_()


def test_a_failed_sparsify_leaves_the_dense_model(tiny, monkeypatch):
    import copy

    import wina.transform

    model = copy.deepcopy(tiny.model)
    ids = torch.arange(12).view(1, 12)
    ref = _logits(model, ids)

    import wina.api

    real = wina.api.method_for
    monkeypatch.setattr(wina.api, "method_for", lambda cfg: _FailAfterPrepare(real(cfg)))
    with pytest.raises(RuntimeError, match="boom"):
        sparsify_(model, build_config("wina", dict(sparsity=0.5, allocation="uniform")))
    assert not wina.transform.is_transformed(model)
    assert torch.equal(_logits(model, ids), ref)


class _FailAfterPrepare:
    """A method that transforms the model, then fails while making its gates."""

    def __init__(self, method):
        self._m = method

    def __getattr__(self, name):
        return getattr(self._m, name)

    def make_gate(self, *a, **k):
        raise RuntimeError("boom")
