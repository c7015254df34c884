import pytest

from wina import SparsityError, WinaConfig
from wina.config import SparsityConfig


@pytest.mark.parametrize("fields,needle", [
    (dict(sparsity=1.0), "sparsity=1.0 is outside [0, 1)"),
    (dict(sparsity=True), "sparsity=True is outside [0, 1)"),
    (dict(allocation="random"), "allocation='random' is not known; accepted: uniform, greedy"),
    (dict(kernel="cuda"), "kernel='cuda' is not known; accepted: auto, off"),
    (dict(dense_prefix=1.0), "dense_prefix=1.0 is outside [0, 1)"),
    (dict(greedy_step=0.0), "greedy_step=0.0 is outside (0, 1]"),
    (dict(greedy_samples=0), "greedy_samples=0 must be a positive integer"),
    (dict(allocation="greedy", sparsity=0.95), "above greedy_max=0.9"),
])
def test_bad_values_are_refused_by_name(fields, needle):
    with pytest.raises(SparsityError) as info:
        SparsityConfig(**fields).check()
    assert needle in str(info.value)


def test_threshold_source_and_method_options_are_checked():
    with pytest.raises(SparsityError, match="thresholds_from='calib' is not known; accepted: sparse, dense"):
        SparsityConfig(thresholds_from="calib").check()
    with pytest.raises(SparsityError, match="mask='random' is not known; accepted: topk, threshold"):
        SparsityConfig(mask="random").check()
    with pytest.raises(SparsityError, match="weight_informed='some' is not known"):
        WinaConfig(weight_informed="some").check()
    WinaConfig().check()
    assert WinaConfig().allocation == "greedy" and SparsityConfig().allocation == "uniform"
