import pytest
import torch

from wina.gated import GatedLinear, ThresholdGate, TopKGate, dense_prefix_len


def test_topk_keeps_exactly_k_largest_scores():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 40)
    scale = torch.rand(40) + 0.1
    g = TopKGate(scale)
    g.set_level(0.75)
    mask = g.mask(x)
    assert (mask.sum(-1) == 10).all()
    score = x.abs() * scale
    kept_min = torch.where(mask, score, torch.inf).amin(-1)
    dropped_max = torch.where(~mask, score, -torch.inf).amax(-1)
    assert (kept_min >= dropped_max).all()


def test_threshold_gate_hits_quantile_of_its_sample():
    torch.manual_seed(0)
    sample = torch.randn(100_000)
    g = ThresholdGate(sample)
    g.set_level(0.4)
    assert abs((~g.mask(torch.randn(200_000))).float().mean() - 0.4) < 0.01


def test_gated_linear_masks_input_and_counts():
    torch.manual_seed(0)
    lin = torch.nn.Linear(16, 8)
    g = TopKGate()
    gl = GatedLinear(lin, g)
    x = torch.randn(2, 6, 16)
    assert torch.equal(gl(x), lin(x))  # level 0: exactly the linear
    g.set_level(0.5)
    gl.reset_counts()
    y = gl(x)
    mask = g.mask(x)
    assert torch.allclose(y, lin(x * mask))
    assert gl.measured == pytest.approx(0.5)


def test_dense_prefix_leaves_leading_positions_dense():
    assert dense_prefix_len(100, 0.01) == 1 and dense_prefix_len(1000, 0.01) == 10 and dense_prefix_len(1, 0.01) == 0
    lin = torch.nn.Linear(16, 8)
    g = TopKGate()
    g.set_level(0.5)
    gl = GatedLinear(lin, g, dense_prefix=0.1)
    x = torch.randn(1, 20, 16)
    y = gl(x)
    assert torch.allclose(y[:, :2], lin(x[:, :2]))  # 20 - int(0.9 * 20) = 2 dense positions
    assert not torch.allclose(y[:, 2:], lin(x[:, 2:]))
