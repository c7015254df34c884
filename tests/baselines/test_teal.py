"""TEAL on SmolLM2's real weights: calibrated thresholds reach the target on text calibration never saw."""

import pytest
import torch

from wina import build_config, sparsify_
from wina.calibrate import CalibrationConfig

CALIB = CalibrationConfig(n_samples=16, seq_len=128, samples_per_target=65536)
pytestmark = pytest.mark.real


@pytest.mark.parametrize("sparsity", [0.25, 0.5, 0.65])
def test_teal_thresholds_reach_target_on_heldout_text(fresh_smollm2, calib_tokens, heldout_tokens, sparsity):
    sp = sparsify_(fresh_smollm2, build_config("teal", dict(sparsity=sparsity, allocation="uniform")), calib_tokens,
                   calibration=CALIB)
    sp.reset_counts()
    with torch.no_grad():
        fresh_smollm2(heldout_tokens)
    m = sp.measured(fresh_smollm2)
    assert abs(m.overall - sparsity) < 0.03, m


def test_teal_keeps_exactly_the_channels_above_its_threshold(fresh_smollm2, calib_tokens, heldout_tokens):
    sp = sparsify_(fresh_smollm2, build_config("teal", dict(sparsity=0.5, allocation="uniform")), calib_tokens,
                   calibration=CALIB)
    gl = sp.modules["5.up"]
    t = gl.gate.threshold
    seen = {}
    h = gl.register_forward_hook(lambda m, a, out: seen.update(x=a[0], y=out))
    with torch.no_grad():
        fresh_smollm2(heldout_tokens[:1])
    h.remove()
    x = seen["x"]
    expected = torch.nn.functional.linear(torch.where(x.abs() > t, x, 0.0), gl.weight, gl.bias)
    assert torch.allclose(seen["y"], expected, atol=1e-5, rtol=1e-4)
    # the threshold is the level quantile of the gate's calibration sample
    assert ((gl.gate.sorted <= t).float().mean() - gl.gate.level).abs() < 1e-3
