"""CATS on SmolLM2's real weights: the MLP activation is thresholded; targets above its share are not reachable."""

import pytest
import torch

from wina import NotReachable, build_config, sparsify_
from wina.calibrate import CalibrationConfig

CALIB = CalibrationConfig(n_samples=16, seq_len=128, samples_per_target=65536)
pytestmark = pytest.mark.real


def test_cats_measured_sparsity_and_unreachable_target(fresh_smollm2, calib_tokens, heldout_tokens):
    sp = sparsify_(fresh_smollm2, build_config("cats", dict(sparsity=0.25)), calib_tokens, calibration=CALIB)
    assert {t.kind for t in sp.targets} == {"act"}
    sp.reset_counts()
    with torch.no_grad():
        fresh_smollm2(heldout_tokens)
    assert abs(sp.measured(fresh_smollm2).overall - 0.25) < 0.03
    sp.restore_()
    # SmolLM2: up+down are 50% of a layer's weights, so 0.5 and 0.65 cannot be reached
    with pytest.raises(NotReachable, match="CATS cannot reach sparsity 0.5"):
        sparsify_(fresh_smollm2, build_config("cats", dict(sparsity=0.5)), calib_tokens, calibration=CALIB)
