"""``wina.memo``: what is computed from a model's tensors (R-Sparse's SVD factors, WINA's rotations) is computed once
per tensor in a process (a sweep's later jobs reuse it), and again whenever the tensor is another one or was changed
in place; a job that reuses it gives the same logits as the job that computed it."""

import pytest
import torch
import torch.nn as nn
from transformers import LlamaConfig, LlamaForCausalLM

import wina.memo
from baselines.rsparse import svd_factors
from wina import build_config, sparsify_
from wina.memo import TensorMemo


@pytest.fixture
def svd_calls(monkeypatch):
    calls = []
    real = torch.linalg.svd

    def counted(a, *args, **kwargs):
        calls.append(tuple(a.shape))
        return real(a, *args, **kwargs)

    monkeypatch.setattr(torch.linalg, "svd", counted)
    monkeypatch.setattr(wina.memo, "MEMO", TensorMemo())
    return calls


def _reconstructs(us, vh, weight):
    return torch.allclose((us.double() @ vh.double()).float(), weight.float(), atol=1e-5)


def test_a_weight_is_decomposed_once(svd_calls):
    w = torch.randn(12, 8)
    first = svd_factors(w)
    again = svd_factors(w.detach())  # another tensor object on the same storage: the same weight
    assert len(svd_calls) == 1
    assert all(a is b for a, b in zip(first, again))
    assert _reconstructs(*first, w)


def test_a_changed_weight_is_decomposed_again(svd_calls):
    param = nn.Parameter(torch.randn(12, 8))
    svd_factors(param.detach())
    with torch.no_grad():
        param.mul_(2.0)  # in place: the version counter moves
    assert _reconstructs(*svd_factors(param.detach()), param.detach())
    param.data = torch.randn(12, 8)  # rebound, as sparsify_'s methods do: another storage
    assert _reconstructs(*svd_factors(param.detach()), param.detach())
    assert len(svd_calls) == 3


def test_results_are_kept_per_name_and_all_inputs():
    memo, a, b = TensorMemo(), torch.randn(4), torch.randn(4)
    calls = []

    def compute(tag):
        calls.append(tag)
        return (torch.full((1,), float(len(calls))),)

    memo.get("x", (a, b), lambda: compute("ab"))
    memo.get("x", (a, b), lambda: compute("ab again"))
    memo.get("x", (b, a), lambda: compute("ba"))  # the inputs' order is part of the key
    memo.get("y", (a, b), lambda: compute("y"))  # so is the name
    assert calls == ["ab", "ba", "y"]


def test_the_memo_keeps_within_its_bytes():
    one = 16 * 16 * 4 * 2  # the input it pins and one result of the same size
    memo = TensorMemo(max_bytes=2 * one)
    a, b, c = (torch.randn(16, 16) for _ in range(3))
    for t in (a, b, a, c):  # a used again: b is then the least recently used
        memo.get("copy", (t,), lambda: (t.clone(),))
    assert len(memo.entries) == 2 and memo.nbytes() <= 2 * one
    assert {key[1] for key in memo.entries} == {TensorMemo.key(a), TensorMemo.key(c)}


def _two_jobs(config):
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2)).eval()
    ids, calib = torch.randint(0, 64, (2, 12)), torch.randint(0, 64, (4, 16))
    logits = []
    for _ in range(2):
        sp = sparsify_(model, config, calib)
        with torch.no_grad():
            logits.append(model(ids).logits)
        sp.restore_()
    return logits


def test_a_second_rsparse_job_reuses_the_factors_and_gives_the_same_logits(svd_calls):
    logits = _two_jobs(build_config("rsparse", dict(sparsity=0.5, allocation="uniform", alpha=0.8)))
    assert len(svd_calls) == 2 * 7  # seven projections per layer, decomposed in the first job only
    assert torch.equal(logits[0], logits[1])


def test_a_second_wina_job_reuses_the_rotations_and_gives_the_same_logits(svd_calls):
    logits = _two_jobs(build_config("wina", dict(sparsity=0.5, allocation="uniform")))
    assert len(svd_calls) == 2 * 2  # k_proj's and gate_proj's basis per layer, in the first job only
    assert torch.equal(logits[0], logits[1])
