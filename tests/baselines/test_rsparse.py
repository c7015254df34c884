"""R-Sparse on SmolLM2's real weights: the FLOP-matched budget of channels and rank."""

import copy

import pytest
import torch

from wina import build_config, sparsify_


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


@pytest.mark.real
def test_rsparse_alpha_one_equals_plain_sparse_gating(smollm2, heldout_tokens):
    a, b = copy.deepcopy(smollm2.model), copy.deepcopy(smollm2.model)
    sparsify_(a, build_config("rsparse", dict(sparsity=0.5, alpha=1.0)))
    sparsify_(b, build_config("wina", dict(sparsity=0.5, transform=False, weight_informed="all", allocation="uniform")))
    la, lb = _logits(a, heldout_tokens[:2]), _logits(b, heldout_tokens[:2])
    assert torch.equal(la, lb)
    assert not torch.equal(la, _logits(smollm2.model, heldout_tokens[:2]))


@pytest.mark.real
def test_rsparse_lowrank_term_is_used_below_alpha_one(smollm2, heldout_tokens):
    m = copy.deepcopy(smollm2.model)
    sp = sparsify_(m, build_config("rsparse", dict(sparsity=0.5, alpha=0.8)))
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
