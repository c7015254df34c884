import os

import pytest
import torch

from wina.gated import Gate, GatedActivation, GatedLinear, ThresholdGate, TokenPolicy, TopKGate, dense_prefix_len


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


@pytest.mark.parametrize("gate", [TopKGate(), TopKGate(torch.rand(16) + 0.1), ThresholdGate(torch.randn(1000))])
def test_every_gate_keeps_every_channel_at_level_zero(gate):
    gate.set_level(0.0)
    x = torch.randn(2, 6, 16)
    x[0, 0, :3] = 0.0  # exact zeros are kept too: level 0 skips nothing
    assert gate.mask(x).all()


class _DropFirst(Gate):
    """A gate that drops channel 0 whatever its level: shows whether a module consults its gate."""

    def mask(self, x):
        keep = torch.ones_like(x, dtype=torch.bool)
        keep[..., 0] = False
        return keep


def test_modules_apply_their_gate_at_level_zero_too():
    torch.manual_seed(0)
    lin, x = torch.nn.Linear(16, 8), torch.randn(2, 6, 16)
    gl = GatedLinear(lin, _DropFirst(), kernel="off")
    x0 = x.clone()
    x0[..., 0] = 0
    assert torch.equal(gl(x), lin(x0))  # not lin(x): the mask is applied at level 0
    ga = GatedActivation(torch.nn.SiLU(), _DropFirst())
    assert (ga(x)[..., 0] == 0).all() and gl.measured == pytest.approx(1 / 16) and ga.measured == pytest.approx(1 / 16)


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
    assert gl.measured == pytest.approx(0.5) and gl.seen == x.numel()
    gl.counting = False
    gl(x)
    assert gl.seen == x.numel()  # counting off: nothing added


def test_dense_prefix_leaves_leading_positions_dense():
    assert dense_prefix_len(100, 0.01) == 1 and dense_prefix_len(1000, 0.01) == 10 and dense_prefix_len(1, 0.01) == 0
    lin = torch.nn.Linear(16, 8)
    g = TopKGate()
    g.set_level(0.5)
    gl = GatedLinear(lin, g, TokenPolicy(0.1))
    x = torch.randn(1, 21, 16)
    y = gl(x)
    assert torch.allclose(y[:, :3], lin(x[:, :3]))  # 21 - int(0.9 * 21) = 3 dense positions
    assert not torch.allclose(y[:, 3:], lin(x[:, 3:]))
    gl.tokens = TokenPolicy(0.1, "floor")  # int(0.1 * 21) = 2
    y = gl(x)
    assert torch.allclose(y[:, :2], lin(x[:, :2])) and not torch.allclose(y[:, 2], lin(x[:, 2]))
    assert dense_prefix_len(7, 0.5, "floor") == 3 and dense_prefix_len(7, 0.5, "wina") == 4


def test_a_fixed_prefix_replaces_the_one_from_the_length_and_is_undone():
    lin = torch.nn.Linear(16, 8)
    g = TopKGate()
    g.set_level(0.5)
    gl = GatedLinear(lin, g, TokenPolicy(0.1))
    x = torch.randn(2, 21, 16)
    with gl.tokens.fixed(5):
        y = gl(x)
    assert torch.allclose(y[:, :5], lin(x[:, :5])) and not torch.allclose(y[:, 5], lin(x[:, 5]))
    y = gl(x)  # the length's 3 again
    assert torch.allclose(y[:, :3], lin(x[:, :3])) and not torch.allclose(y[:, 3], lin(x[:, 3]))


def test_ungated_modules_compute_the_dense_function_uncounted_and_gate_again_after():
    from wina.gated import ungated

    torch.manual_seed(0)
    lin, act = torch.nn.Linear(16, 8), torch.nn.SiLU()
    gl, ga = GatedLinear(lin, TopKGate()), GatedActivation(act, ThresholdGate(torch.randn(512)))
    gl.gate.set_level(0.5)
    ga.gate.set_level(0.5)
    model = torch.nn.Sequential(gl, ga)
    x = torch.randn(4, 16)
    with ungated(model):
        assert torch.equal(model(x), act(lin(x)))
    assert gl.seen == 0 and ga.seen == 0
    assert not torch.allclose(model(x), act(lin(x))) and gl.seen > 0


# --- GatedLinear's kernel path: single-row calls go through the Triton kernel with the PyTorch path's result.
# On CPU the kernel runs through the Triton interpreter; on a CUDA machine (TRITON_INTERPRET=0) compiled.
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
DEV = "cuda" if torch.cuda.is_available() and not INTERPRET else "cpu"


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
    lin = torch.nn.Linear(64, 32).half().to(DEV)
    gate = TopKGate()
    gate.set_level(0.5)
    GatedLinear(lin, gate, kernel="auto")(torch.randn(2, 5, 64).half().to(DEV))
    assert not kernel_calls


@pytest.mark.parametrize("name", ["topk", "topk_scaled", "threshold", "rsparse", "activation"])
def test_batched_rows_take_the_mask_kernel_and_match_torch_path(monkeypatch, name):
    """Prefill / scoring calls gate in one kernel (``kernels.mask``): the same output and the same counts as the
    PyTorch gate, dense prefix included."""
    from kernels import dispatch

    calls = []
    real = dispatch.masked_activations
    monkeypatch.setattr(dispatch, "ALLOW_CPU_KERNEL", True)
    monkeypatch.setattr(dispatch, "masked_activations", lambda *a: calls.append(a[1]) or real(*a))
    torch.manual_seed(0)
    lin = torch.nn.Linear(96, 80, bias=True).to(DEV)
    gate = _gates(lin.weight.detach())["threshold" if name == "activation" else name].to(DEV)
    gate.set_level(0.6)
    tokens = TokenPolicy(dense_prefix=0.25)
    if name == "activation":
        fast = GatedActivation(torch.nn.SiLU(), gate, tokens, kernel="auto")
        slow = GatedActivation(torch.nn.SiLU(), gate, tokens, kernel="off")
    else:
        fast, slow = GatedLinear(lin, gate, tokens, kernel="auto"), GatedLinear(lin, gate, tokens, kernel="off")
    x = torch.randn(3, 8, 96, device=DEV)
    y_fast, y_slow = fast(x), slow(x)
    assert calls, "the mask kernel was not used"
    assert torch.allclose(y_fast, y_slow, atol=1e-6)
    assert (fast.kept, fast.seen) == (slow.kept, slow.seen) and 0 < fast.kept < fast.seen
    assert fast.measured_all_positions == slow.measured_all_positions
    fast.counting = False  # a timing run: the same output, the counts untouched
    assert torch.allclose(fast(x), y_fast) and (fast.kept, fast.seen) == (slow.kept, slow.seen)
