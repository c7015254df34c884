"""Kernel tests run on CPU through the Triton interpreter unless told otherwise.

TRITON_INTERPRET must be set before any @triton.jit function is defined, i.e. before
``kernels.gated_gemv`` / ``kernels.select`` are imported; this conftest is loaded first.
On a GPU machine run with TRITON_INTERPRET=0 to test the compiled kernels on CUDA.
"""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

pytest.importorskip("triton")

INTERPRET = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0", "false", "False")


def _device() -> str:
    if not INTERPRET and torch.cuda.is_available():
        return "cuda"
    return "cpu"


@pytest.fixture(scope="session")
def dev() -> str:
    d = _device()
    if d == "cpu" and not INTERPRET:
        pytest.skip("no CUDA and TRITON_INTERPRET is off")
    return d


@pytest.fixture
def poison(monkeypatch):
    """Make every buffer the kernel launcher allocates start as garbage (NaN / -1)."""
    import kernels.gated_gemv as gg

    def _empty(shape, device, dtype):
        if dtype.is_floating_point:
            return torch.full(shape, float("nan"), device=device, dtype=dtype)
        return torch.full(shape, -1, device=device, dtype=dtype)

    monkeypatch.setattr(gg, "_empty", _empty)
    return _empty
