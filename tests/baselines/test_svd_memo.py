"""R-Sparse's SVD factors are computed once per weight in a process (a sweep's later jobs reuse them), and again
whenever the weight is another tensor or was changed in place."""

import pytest
import torch
import torch.nn as nn
from transformers import LlamaConfig, LlamaForCausalLM

import baselines.rsparse as rsparse
from baselines.rsparse import SvdMemo
from wina import build_config, sparsify_


@pytest.fixture
def svd_calls(monkeypatch):
    calls = []
    real = torch.linalg.svd

    def counted(a, *args, **kwargs):
        calls.append(tuple(a.shape))
        return real(a, *args, **kwargs)

    monkeypatch.setattr(torch.linalg, "svd", counted)
    return calls


def _reconstructs(us, vh, weight):
    return torch.allclose((us.double() @ vh.double()).float(), weight.float(), atol=1e-5)


def test_a_weight_is_decomposed_once(svd_calls):
    memo, w = SvdMemo(), torch.randn(12, 8)
    first = memo.factors(w)
    again = memo.factors(w.detach())  # another tensor object on the same storage: the same weight
    assert len(svd_calls) == 1
    assert all(a is b for a, b in zip(first, again))
    assert _reconstructs(*first, w)


def test_a_changed_weight_is_decomposed_again(svd_calls):
    memo, param = SvdMemo(), nn.Parameter(torch.randn(12, 8))
    memo.factors(param.detach())
    with torch.no_grad():
        param.mul_(2.0)  # in place: the version counter moves
    assert _reconstructs(*memo.factors(param.detach()), param.detach())
    param.data = torch.randn(12, 8)  # rebound, as sparsify_'s methods do: another storage
    assert _reconstructs(*memo.factors(param.detach()), param.detach())
    assert len(svd_calls) == 3


def test_the_memo_keeps_within_its_bytes():
    w = torch.randn(16, 16)
    one = w.nbytes * 3  # the weight it pins, U S and V^T
    memo = SvdMemo(max_bytes=2 * one)
    a, b, c = (torch.randn(16, 16) for _ in range(3))
    memo.factors(a)
    memo.factors(b)
    memo.factors(a)  # used again: b is now the least recently used
    memo.factors(c)
    assert len(memo.entries) == 2 and memo.nbytes() <= 2 * one
    assert set(memo.entries) == {SvdMemo.key(a), SvdMemo.key(c)}


def test_a_second_rsparse_job_reuses_the_factors_and_gives_the_same_logits(svd_calls, monkeypatch):
    monkeypatch.setattr(rsparse, "SVD_MEMO", SvdMemo())
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2)).eval()
    ids, calib = torch.randint(0, 64, (2, 12)), torch.randint(0, 64, (4, 16))
    config = build_config("rsparse", dict(sparsity=0.5, allocation="uniform", alpha=0.8))
    logits = []
    for _ in range(2):
        sp = sparsify_(model, config, calib)
        with torch.no_grad():
            logits.append(model(ids).logits)
        sp.restore_()
    assert len(svd_calls) == 2 * 7  # seven projections per layer, decomposed in the first job only
    assert torch.equal(logits[0], logits[1])
