"""``kernels.mask.masked_activations`` is the PyTorch gates' function in one kernel: exactly the k largest scores per
row (ties kept in channel order), or ``score > t``; the dense prefix kept whole; the kept counts of gated rows and of
all rows added on the device."""

import pytest
import torch

from kernels.mask import masked_activations
from kernels.score import channel_score, threshold_mask, topk_mask


def _run(x, rule, value, scale=None, dense=0):
    kept = torch.zeros(2, dtype=torch.int64, device=x.device)
    return masked_activations(x, rule, value, scale, dense, kept), kept


def _reference(x, mask, dense):
    mask = mask.clone()
    mask[..., :dense, :] = True
    return x * mask, [int(mask[..., dense:, :].sum()), int(mask.sum())]


@pytest.mark.parametrize("n,k", [(24, 0), (24, 1), (24, 9), (24, 23), (24, 24), (100, 37), (576, 201)])
@pytest.mark.parametrize("with_scale", [False, True])
def test_topk_equals_the_pytorch_gate(dev, n, k, with_scale):
    torch.manual_seed(n + k)
    x = torch.randn(3, 7, n, device=dev)  # 21 rows: not a multiple of the kernel's row block
    scale = torch.rand(n, device=dev) + 0.5 if with_scale else None
    got, kept = _run(x, "topk", k, scale, dense=2)
    want, counts = _reference(x, topk_mask(x, k, scale), 2)
    assert torch.equal(got, want)
    assert kept.tolist() == counts


def test_topk_keeps_exactly_k_with_ties_in_channel_order(dev):
    x = torch.tensor([[1.0, -2.0, 2.0, 0.5, -2.0, 2.0, 3.0, 0.0]] * 2, device=dev)
    got, kept = _run(x, "topk", 4)  # 3.0, then three of the four |2.0|: the first three
    assert got.tolist() == [[0.0, -2.0, 2.0, 0.0, -2.0, 0.0, 3.0, 0.0]] * 2
    assert kept.tolist() == [8, 8]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_16bit_scores_rank_in_their_dtype(dev, dtype):
    """Exactly k per row, none dropped above a kept one, by the score rounded to x's dtype (the bisection runs
    over the bits such a score can have)."""
    torch.manual_seed(1)
    x, scale = torch.randn(5, 11, 576, device=dev).to(dtype), torch.rand(576, device=dev) + 0.5
    got, _ = _run(x, "topk", 201, scale)
    score = (x.abs() * scale.to(dtype)).float()
    kept = got != 0
    assert (kept.sum(-1) == 201).all()
    assert (score.masked_fill(~kept, float("inf")).amin(-1) >= score.masked_fill(kept, -1).amax(-1)).all()


def _stable_topk(x, k, scale):
    """The k largest scores (rounded to x's dtype) of each row, ties in channel order: a stable sort."""
    order = torch.sort(-channel_score(x, scale).float(), dim=-1, stable=True).indices[..., :k]
    return torch.zeros_like(x, dtype=torch.bool).scatter_(-1, order, True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("n,k", [(1, 1), (2, 1), (7, 3), (577, 201), (1536, 537)])
@pytest.mark.parametrize("with_scale", [False, True])
def test_16bit_topk_with_many_ties_is_the_stable_order(dev, dtype, n, k, with_scale):
    """Values from a small set, so most rows have ties at their k-th score: the kernel keeps exactly the stable
    sort's channels (the packed two-keys-per-word count included: odd widths, one channel, padding)."""
    torch.manual_seed(n)
    x = (torch.randint(-12, 13, (3, 5, n), device=dev) / 4).to(dtype)
    x[1] *= torch.rand(5, n, device=dev) < 0.3  # rows with fewer nonzero scores than k: zeros kept too
    scale = torch.rand(n, device=dev) + 0.5 if with_scale else None
    got, kept = _run(x, "topk", k, scale, dense=1)
    want, counts = _reference(x, _stable_topk(x, k, scale), 1)
    assert torch.equal(got, want)
    assert kept.tolist() == counts


@pytest.mark.parametrize("t", [float("-inf"), 0.3, 1.1])
@pytest.mark.parametrize("with_scale", [False, True])
def test_threshold_equals_the_pytorch_gate(dev, t, with_scale):
    torch.manual_seed(3)
    x = torch.randn(2, 9, 40, device=dev)
    scale = torch.rand(40, device=dev) + 0.5 if with_scale else None
    got, kept = _run(x, "threshold", t, scale, dense=3)
    want, counts = _reference(x, threshold_mask(x, t, scale), 3)
    assert torch.equal(got, want)
    assert kept.tolist() == counts


def test_counts_accumulate(dev):
    x = torch.randn(4, 6, 16, device=dev)
    kept = torch.zeros(2, dtype=torch.int64, device=dev)
    for _ in range(3):
        masked_activations(x, "topk", 5, None, 1, kept)
    assert kept.tolist() == [3 * 4 * 5 * 5, 3 * (4 * 5 * 5 + 4 * 16)]



@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_topk_with_an_outlier_far_above_the_kth_score(dev, dtype):
    """The bisection starts from a window (8 binades) below the row's largest score when the window holds k scores;
    a row whose k-th score lies far below an outlier must fall back to the whole range (and one beside it must not)."""
    torch.manual_seed(4)
    x = (torch.rand(2, 3, 1536, device=dev) + 1) * 1e-3
    x[0, :, 5] = 3e4  # ~24 binades above the rest: the window below it holds one score
    got, kept = _run(x.to(dtype), "topk", 500)
    want, counts = _reference(x.to(dtype), _stable_topk(x.to(dtype), 500, None), 0)
    assert torch.equal(got, want)
    assert kept.tolist() == counts
