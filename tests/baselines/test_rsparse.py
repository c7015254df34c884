"""R-Sparse on SmolLM2's real weights: the reference's selection (one calibrated threshold per linear on |x|, or on
|x| * ||W[:, i]|| where alpha < 1) and the FLOP-matched budget of channels and rank."""

import copy

import pytest
import torch
import torch.nn.functional as F

from wina import build_config, sparsify_
from wina.calibrate import CalibrationConfig

CALIB = CalibrationConfig(n_samples=16, seq_len=128, samples_per_target=65536)


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


@pytest.mark.real
@pytest.mark.parametrize("alpha", [1.0, 0.8])
def test_reference_threshold_rule_keeps_the_same_channels(smollm2, calib_tokens, heldout_tokens, alpha):
    """Restated from the reference: per linear, skip score <= t where t cuts 1 - (1 - s) alpha of the calibration
    scores, score = |x| at alpha 1 and |x| * ||W[:, i]|| below; the dropped channels go through the rank-r term."""
    m = copy.deepcopy(smollm2.model)
    cfg = build_config("rsparse", dict(sparsity=0.5, alpha=alpha, thresholds_from="dense"))
    sp = sparsify_(m, cfg, calib_tokens, calibration=CALIB)
    checked = []

    def check(module, args, out, key):
        (x,) = args
        gate = module.gate
        c = module.weight.float().norm(dim=0)
        score = x.abs().float() * (c if alpha < 1 else 1.0)
        keep = score > gate.threshold
        r = gate.rank
        low = (x * ~keep) @ gate.vh[:r].T @ gate.us[:, :r].T if r else 0.0
        expected = F.linear(x * keep, module.weight, module.bias) + low
        assert torch.allclose(out, expected, atol=1e-4, rtol=1e-4), key
        assert gate.kept == int(gate.in_features * 0.5 * alpha)
        checked.append(key)

    hooks = [sp.modules[k].register_forward_hook(lambda mod, a, o, k=k: check(mod, a, o, k)) for k in ("2.q", "9.down")]
    sp.reset_counts()
    _logits(m, heldout_tokens[:2])
    for h in hooks:
        h.remove()
    assert len(checked) == 2
    # the kept count varies per token and lands near the channel budget on text the calibration never saw
    assert abs(sp.measured(m).overall - (1 - 0.5 * alpha)) < 0.05


@pytest.mark.real
def test_rsparse_topk_at_alpha_one_is_plain_magnitude_topk(smollm2, heldout_tokens):
    a, b = copy.deepcopy(smollm2.model), copy.deepcopy(smollm2.model)
    sparsify_(a, build_config("rsparse", dict(sparsity=0.5, alpha=1.0, mask="topk")))
    sparsify_(b, build_config("wina", dict(sparsity=0.5, transform=False, weight_informed="none", allocation="uniform")))
    la, lb = _logits(a, heldout_tokens[:2]), _logits(b, heldout_tokens[:2])
    assert torch.equal(la, lb)
    assert not torch.equal(la, _logits(smollm2.model, heldout_tokens[:2]))


@pytest.mark.real
def test_rsparse_lowrank_term_is_used_below_alpha_one(smollm2, heldout_tokens):
    m = copy.deepcopy(smollm2.model)
    sp = sparsify_(m, build_config("rsparse", dict(sparsity=0.5, alpha=0.8, mask="topk")))
    gate = sp.modules["0.gate"].gate
    n, out = gate.in_features, gate.out_features
    assert gate.kept == int(n * 0.5 * 0.8) and gate.rank == int((n * out * 0.5 - gate.kept * out) // (n + out)) > 0
    sp.reset_counts()
    _logits(m, heldout_tokens[:2])
    assert abs(sp.measured(m).overall - (1 - 0.5 * 0.8)) < 0.01  # channel sparsity


def test_rsparse_gate_is_dense_at_level_zero_whatever_alpha():
    from baselines.rsparse import RSparseGate

    torch.manual_seed(0)
    g = RSparseGate(torch.randn(24, 32), alpha=0.7)
    g.set_level(0.0)
    assert g.kept == 32 and g.rank == 0 and g.mask(torch.randn(3, 32)).all()
    g.set_level(0.5)
    assert g.kept == int(32 * 0.5 * 0.7) and g.rank > 0


def test_bad_alpha_is_refused():
    from wina import SparsityError

    with pytest.raises(SparsityError, match="alpha key 'ffn' is not known"):
        build_config("rsparse", dict(sparsity=0.5, alpha={"ffn": 0.5}))
    with pytest.raises(SparsityError, match="alpha for q is 1.5"):
        build_config("rsparse", dict(sparsity=0.5, alpha={"attn": 1.5}))
