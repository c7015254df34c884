"""GatedLinear dispatches single-row calls to the Triton kernel with the PyTorch path's result.

On CPU the kernel runs through the Triton interpreter; on a CUDA machine (TRITON_INTERPRET=0) compiled, on the GPU."""

import os

import pytest
import torch

INTERPRET = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
DEV = "cuda" if torch.cuda.is_available() and not INTERPRET else "cpu"

pytest.importorskip("triton")

from wina.gated import GatedLinear, ThresholdGate, TopKGate  # noqa: E402


@pytest.fixture
def kernel_calls(monkeypatch):
    from kernels import dispatch

    calls = []
    real = dispatch.gated_linear

    def spy(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(dispatch, "ALLOW_CPU_KERNEL", True)
    monkeypatch.setattr(dispatch, "gated_linear", spy)
    return calls


def _gates(weight):
    from baselines.rsparse import RSparseGate

    torch.manual_seed(1)
    sample = torch.randn(4096, device=weight.device)
    return {
        "topk": TopKGate(),
        "topk_scaled": TopKGate(weight.float().norm(dim=0)),
        "threshold": ThresholdGate(sample),
        "rsparse": RSparseGate(weight, alpha=0.8),
    }


@pytest.mark.parametrize("name", ["topk", "topk_scaled", "threshold", "rsparse"])
def test_single_row_takes_kernel_and_matches_torch_path(kernel_calls, name):
    torch.manual_seed(0)
    lin = torch.nn.Linear(96, 80, bias=True).half().to(DEV)
    gate = _gates(lin.weight.detach())[name].to(DEV)
    gate.set_level(0.6)
    fast, slow = GatedLinear(lin, gate, kernel="auto"), GatedLinear(lin, gate, kernel="off")
    x = torch.randn(1, 1, 96).half().to(DEV)
    y_fast, y_slow = fast(x), slow(x)
    assert kernel_calls, "the kernel was not used"
    ref = y_slow.double()
    assert (y_fast.double() - ref).norm() / ref.norm() < 5e-3
    assert fast.kept == slow.kept and fast.seen == slow.seen


def test_several_rows_stay_on_torch_path(kernel_calls):
    lin = torch.nn.Linear(64, 32).half()
    gate = TopKGate()
    gate.set_level(0.5)
    GatedLinear(lin, gate, kernel="auto")(torch.randn(2, 5, 64).half())
    assert not kernel_calls
