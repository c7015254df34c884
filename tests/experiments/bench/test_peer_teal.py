"""``experiments.bench.peer_teal.load`` runs a TEAL checkout's kernel definitions (never the rest of its module,
which needs packages the harness does not install) and calls them with TEAL's convention."""
import torch

from experiments.bench.peer_teal import load

FAKE = '''import torch
def splitk_sparse_gemv(x, weight, threshold, sparsity_bin):
    CALLS.append((tuple(x.shape), weight.stride(), threshold, sparsity_bin))
    return (x.squeeze(0) * (x.abs() > threshold).squeeze(0)) @ weight.t()
CALLS = []

import sys
import os
from compile_wrapper import BaseKernel  # needs msgspec: must not run
raise RuntimeError("the module's bottom half ran")
'''


def test_absent_checkout_is_none(tmp_path):
    assert load(None) is None and load("") is None and load(str(tmp_path)) is None


def test_runs_the_kernel_part_with_teals_convention(tmp_path):
    (tmp_path / "kernels").mkdir()
    (tmp_path / "kernels" / "sparse_gemv.py").write_text(FAKE)
    gemv = load(str(tmp_path))
    x, w_t = torch.tensor([[0.5, -2.0, 0.1]]), torch.randn(3, 4)  # w_t: [in, out], as our kernel reads it
    y = gemv(x, w_t, 0.3, 0.65)
    assert torch.allclose(y.view(1, 4), (x * (x.abs() > 0.3)) @ w_t)
    (shape, stride, threshold, bin_), = [c for c in _calls(gemv)]
    assert shape == (1, 1, 3) and stride == (1, 4) and threshold == 0.3 and bin_ == 65


def _calls(gemv):
    for cell in gemv.__closure__:
        fn = cell.cell_contents
        if callable(fn) and "CALLS" in getattr(fn, "__globals__", {}):
            return fn.__globals__["CALLS"]
    raise AssertionError("no kernel in the closure")
