"""WINA's rule on SmolLM2's real weights: the transform preserves the function, and the channels kept are the
top-k of ``|x| * ||W[:, i]||`` computed on the weights the model actually uses (after the transform)."""

import pytest
import torch
import torch.nn.functional as F

from wina import build_config, sparsify_
from wina.gated import GatedLinear
from wina.wina_method import WEIGHT_INFORMED

pytestmark = pytest.mark.real


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


def test_wina_transform_leaves_dense_logits_unchanged(smollm2, fresh_smollm2, heldout_tokens):
    ref = _logits(smollm2.model, heldout_tokens[:2])
    sp = sparsify_(fresh_smollm2, build_config("wina", dict(sparsity=0.0, allocation="uniform")))
    assert sp.facts["transform"] is True
    out = _logits(fresh_smollm2, heldout_tokens[:2])
    assert not torch.equal(fresh_smollm2.model.layers[0].self_attn.k_proj.weight,
                           smollm2.model.model.layers[0].self_attn.k_proj.weight)
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


def _independent_topk(x, weight, kind, weight_informed, sparsity):
    """WINA's selection restated: score |x_i| * ||W[:, i]|| on the projections the option names (|x| on the
    rest), keep the int(in * (1 - s)) largest per token."""
    score = x.abs().float()
    if kind in WEIGHT_INFORMED[weight_informed]:
        score = score * weight.float().norm(dim=0)
    k = int(x.shape[-1] * (1 - sparsity))
    keep = torch.zeros_like(x, dtype=torch.bool)
    return keep.scatter_(-1, score.topk(k, dim=-1).indices, True)


@pytest.mark.parametrize("sparsity", [0.25, 0.5, 0.65])
@pytest.mark.parametrize("fields", [dict(transform=True), dict(transform=False, weight_informed="all")])
def test_wina_keeps_the_topk_channels_and_measures_the_target(fresh_smollm2, heldout_tokens, sparsity, fields):
    cfg = build_config("wina", {**fields, "sparsity": sparsity, "allocation": "uniform"})
    sp = sparsify_(fresh_smollm2, cfg)
    checked = []

    def check(module: GatedLinear, args, out, key):
        (x,) = args
        t = next(t for t in sp.targets if t.key == key)
        keep = _independent_topk(x, module.weight, t.kind, cfg.weight_informed, sparsity)
        assert torch.allclose(out, F.linear(x * keep, module.weight, module.bias), atol=1e-5, rtol=1e-4), key
        checked.append(key)

    hooks = [sp.modules[k].register_forward_hook(lambda m, a, o, k=k: check(m, a, o, k))
             for k in ("0.q", "0.k", "7.gate", "7.down", "29.o")]
    sp.reset_counts()
    _logits(fresh_smollm2, heldout_tokens)
    for h in hooks:
        h.remove()
    assert len(checked) == 5
    m = sp.measured(fresh_smollm2)
    assert abs(m.overall - sparsity) < 0.01, m
    assert all(abs(v - sparsity) < 0.01 for v in m.per_kind.values()), m


def test_deployable_wina_thresholds_the_weight_informed_score(fresh_smollm2, calib_tokens, heldout_tokens):
    """mask=threshold: keep |x_i| c_i > t, t the level quantile of the same score on calibration text, with c from
    the transformed weights; the measured sparsity on held-out text lands near the target."""
    from wina.calibrate import CalibrationConfig

    calib = CalibrationConfig(n_samples=16, seq_len=128, samples_per_target=65536)
    cfg = build_config("wina", dict(sparsity=0.5, allocation="uniform", mask="threshold"))
    sp = sparsify_(fresh_smollm2, cfg, calib_tokens, calibration=calib)
    checked = []

    def check(module, args, out, key):
        (x,) = args
        kind = key.split(".")[1]
        score = x.abs().float() * (module.weight.float().norm(dim=0) if kind in WEIGHT_INFORMED["paper"] else 1.0)
        keep = score > module.gate.threshold
        assert torch.allclose(out, F.linear(x * keep, module.weight, module.bias), atol=1e-5, rtol=1e-4), key
        checked.append(key)

    hooks = [sp.modules[k].register_forward_hook(lambda m, a, o, k=k: check(m, a, o, k)) for k in ("4.k", "4.gate", "4.q")]
    sp.reset_counts()
    _logits(fresh_smollm2, heldout_tokens)
    for h in hooks:
        h.remove()
    assert len(checked) == 3
    assert abs(sp.measured(fresh_smollm2).overall - 0.5) < 0.04
