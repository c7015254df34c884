"""The numerical contracts of every method on SmolLM2's real weights."""

import pytest
import torch

from wina import NotReachable, build_config, sparsify_
from wina.calibrate import CalibrationConfig

CALIB = CalibrationConfig(n_samples=16, seq_len=128, samples_per_target=65536)
pytestmark = pytest.mark.real


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


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
    assert torch.equal(_logits(fresh_smollm2, heldout_tokens[:2]), ref)


def test_wina_transform_leaves_dense_logits_unchanged(smollm2, fresh_smollm2, heldout_tokens):
    ref = _logits(smollm2.model, heldout_tokens[:2])
    sp = sparsify_(fresh_smollm2, build_config("wina", dict(sparsity=0.0, allocation="uniform")))
    assert sp.facts["transform"] is True
    out = _logits(fresh_smollm2, heldout_tokens[:2])
    assert not torch.equal(fresh_smollm2.model.layers[0].self_attn.k_proj.weight, smollm2.model.model.layers[0].self_attn.k_proj.weight)
    rel = (out - ref).norm() / ref.norm()
    assert rel < 1e-5, rel
    assert (out.argmax(-1) == ref.argmax(-1)).float().mean() > 0.999


def test_transform_makes_k_and_gate_columns_orthogonal(fresh_smollm2):
    sparsify_(fresh_smollm2, build_config("wina", dict(sparsity=0.0, allocation="uniform")))
    layer = fresh_smollm2.model.layers[3]
    for lin in (layer.self_attn.k_proj, layer.mlp.gate_proj):
        w = lin.weight.double()
        gram = w.T @ w
        off = gram - torch.diag(torch.diagonal(gram))
        assert off.abs().max() / gram.diagonal().max() < 1e-5
        sv = torch.linalg.svdvals(w)
        assert torch.allclose(w.norm(dim=0)[: sv.numel()], sv, rtol=1e-4)


@pytest.mark.parametrize("sparsity", [0.25, 0.5, 0.65])
@pytest.mark.parametrize("fields", [dict(transform=True), dict(transform=False, weight_informed="all")])
def test_topk_measured_sparsity_matches_target(fresh_smollm2, heldout_tokens, sparsity, fields):
    sp = sparsify_(fresh_smollm2, build_config("wina", {**fields, "sparsity": sparsity, "allocation": "uniform"}))
    sp.reset_counts()
    _logits(fresh_smollm2, heldout_tokens)
    m = sp.measured(fresh_smollm2)
    assert abs(m["overall"] - sparsity) < 0.01, m
    assert all(abs(v - sparsity) < 0.01 for v in m["per_kind"].values()), m


@pytest.mark.parametrize("sparsity", [0.25, 0.5, 0.65])
def test_teal_thresholds_reach_target_on_heldout_text(fresh_smollm2, calib_tokens, heldout_tokens, sparsity):
    sp = sparsify_(fresh_smollm2, build_config("teal", dict(sparsity=sparsity, allocation="uniform")), calib_tokens,
                   calibration=CALIB)
    sp.reset_counts()
    _logits(fresh_smollm2, heldout_tokens)
    m = sp.measured(fresh_smollm2)
    assert abs(m["overall"] - sparsity) < 0.03, m


def test_cats_measured_sparsity_and_unreachable_target(fresh_smollm2, calib_tokens, heldout_tokens):
    sp = sparsify_(fresh_smollm2, build_config("cats", dict(sparsity=0.25)), calib_tokens, calibration=CALIB)
    sp.reset_counts()
    _logits(fresh_smollm2, heldout_tokens)
    assert abs(sp.measured(fresh_smollm2)["overall"] - 0.25) < 0.03
    # SmolLM2: up+down are 50% of a layer's weights, so 0.5 and 0.65 cannot be reached
    with pytest.raises(NotReachable, match="CATS cannot reach sparsity 0.5"):
        sparsify_(fresh_smollm2, build_config("cats", dict(sparsity=0.5)), calib_tokens, calibration=CALIB)


def test_rsparse_alpha_one_equals_plain_sparse_gating(smollm2, calib_tokens, heldout_tokens):
    import copy

    a, b = copy.deepcopy(smollm2.model), copy.deepcopy(smollm2.model)
    sparsify_(a, build_config("rsparse", dict(sparsity=0.5, alpha=1.0)))
    sparsify_(b, build_config("wina", dict(sparsity=0.5, transform=False, weight_informed="all", allocation="uniform")))
    la, lb = _logits(a, heldout_tokens[:2]), _logits(b, heldout_tokens[:2])
    assert torch.equal(la, lb)
    assert not torch.equal(la, _logits(smollm2.model, heldout_tokens[:2]))


def test_rsparse_lowrank_term_is_used_below_alpha_one(smollm2, heldout_tokens):
    import copy

    m = copy.deepcopy(smollm2.model)
    sp = sparsify_(m, build_config("rsparse", dict(sparsity=0.5, alpha=0.8)))
    gate = sp.modules["0.gate"].gate
    n, out = gate.in_features, gate.out_features
    assert gate.kept == int(n * 0.5 * 0.8) and gate.rank == int((n * out * 0.5 - gate.kept * out) // (n + out)) > 0
    sp.reset_counts()
    _logits(m, heldout_tokens[:2])
    assert abs(sp.measured(m)["overall"] - (1 - 0.5 * 0.8)) < 0.01  # channel sparsity
