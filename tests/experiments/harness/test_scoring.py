"""The batched scorer gives every log-likelihood request HFLM's own answer (sum of continuation log-probs, greedy
flag), in HFLM's batches: varied lengths, one-token continuations sharing a context, truncated contexts; on each
supported family, soft-capped logits included; a head it cannot reproduce raises."""

import random

import pytest
import torch
from lm_eval.models.huggingface import HFLM
from transformers import (Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM)

from experiments.harness.lm import SessionLM
from experiments.harness.scoring import HeadMismatch
from experiments.harness.tiny_model import byte_tokenizer
from tests.wina.test_transform import _random_norms_

COMMON = dict(vocab_size=257, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=256)
FAMILIES = {
    "llama": lambda: LlamaForCausalLM(LlamaConfig(**COMMON)),
    "qwen2": lambda: Qwen2ForCausalLM(Qwen2Config(**COMMON)),
    "gemma3": lambda: Gemma3ForCausalLM(Gemma3TextConfig(**COMMON, head_dim=16, sliding_window=8,
                                                         final_logit_softcapping=3.0,
                                                         layer_types=["sliding_attention", "full_attention"])),
}
MAX_LENGTH = 40


def _lm(family: str, batch_size: int = 3) -> SessionLM:
    torch.manual_seed(0)
    model = _random_norms_(FAMILIES[family]())
    return SessionLM(pretrained=model, tokenizer=byte_tokenizer(), batch_size=batch_size, max_length=MAX_LENGTH,
                     device="cpu")


def _requests(lm: SessionLM) -> list:
    rng = random.Random(0)
    reqs = []
    for i in range(14):  # varied lengths; the last ones longer than max_length (truncated from the left)
        ctx = [rng.randrange(256) for _ in range(rng.randrange(1, 25) + (30 if i >= 11 else 0))]
        reqs.append((("c", str(i)), ctx, [rng.randrange(256) for _ in range(rng.randrange(1, 6))]))
    shared = [rng.randrange(256) for _ in range(9)]
    for tok in (3, 50, 3, 200):  # one-token continuations of one context (a duplicate among them)
        reqs.append((("shared", str(tok)), shared, [tok]))
    # continuations the model predicts greedily, so some flags are True
    with torch.no_grad():
        for i in range(3):
            ctx = [rng.randrange(256) for _ in range(6 + i)]
            ids = list(ctx)
            for _ in range(3):
                ids.append(int(lm.model(torch.tensor([ids])).logits[0, -1].argmax()))
            reqs.append((("greedy", str(i)), ctx, ids[len(ctx):]))
    return reqs


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_batched_scores_equal_hflm(family):
    lm = _lm(family)
    reqs = _requests(lm)
    reference = HFLM._loglikelihood_tokens(lm, reqs, disable_tqdm=True)
    got = lm._loglikelihood_tokens(reqs, disable_tqdm=True)
    assert lm._scorer is not None and lm._scorer.checked
    assert [g for _, g in got] == [g for _, g in reference]
    assert any(g for _, g in got) and not all(g for _, g in got)
    assert torch.allclose(torch.tensor([s for s, _ in got]), torch.tensor([s for s, _ in reference]), atol=1e-4)


def test_batch_size_does_not_change_scores():
    reqs = _requests(_lm("llama"))
    one = _lm("llama", batch_size=1)._loglikelihood_tokens(reqs, disable_tqdm=True)
    many = _lm("llama", batch_size=8)._loglikelihood_tokens(reqs, disable_tqdm=True)
    assert [g for _, g in one] == [g for _, g in many]
    assert [s for s, _ in one] == pytest.approx([s for s, _ in many], abs=1e-4)


def test_a_request_sharing_a_longer_requests_row_is_scored_on_its_own_positions():
    """``context + continuation[:-1]`` equal, continuation lengths not: the shorter request is scored at the trailing
    positions, as if alone. (HFLM's ``torch.gather`` there reads the leading positions of the longer one; a group
    like this does not occur within one multiple-choice document, where the context is shared.)"""
    lm = _lm("llama")
    shared = list(range(10, 19))
    reqs = [(("one", "a"), shared, [3]), (("split", "b"), shared[:-2], shared[-2:] + [7])]
    got = lm._loglikelihood_tokens(reqs, disable_tqdm=True)
    with torch.no_grad():
        logp = torch.log_softmax(lm.model(torch.tensor([shared])).logits[0].float(), -1)
    assert got[0][0] == pytest.approx(float(logp[-1, 3]), abs=1e-5)
    assert got[1][0] == pytest.approx(float(logp[-3, shared[-2]] + logp[-2, shared[-1]] + logp[-1, 7]), abs=1e-5)


def test_a_head_it_cannot_reproduce_raises():
    lm = _lm("gemma3")
    lm._scorer.softcap = None  # the soft-capping left out: its logits are no longer the model's
    with pytest.raises(HeadMismatch, match="output head could not be reproduced"):
        lm._loglikelihood_tokens(_requests(lm), disable_tqdm=True)
