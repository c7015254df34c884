"""Both batched scorers (``scoring=hflm``: HFLM's batches; ``scoring=shared``: each context once for the requests
that share it) give every log-likelihood request HFLM's own answer (sum of continuation log-probs, greedy flag):
varied lengths, one-token continuations sharing a context, truncated contexts; on each supported family, soft-capped
logits and sliding-window layers included; a head it cannot reproduce raises."""

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


SCORINGS = ("hflm", "shared")


def _lm(family: str, batch_size: int = 3, scoring: str = "shared", dtype=torch.float32) -> SessionLM:
    torch.manual_seed(0)
    model = _random_norms_(FAMILIES[family]()).to(dtype)
    return SessionLM(pretrained=model, tokenizer=byte_tokenizer(), batch_size=batch_size, max_length=MAX_LENGTH,
                     device="cpu", scoring=scoring)


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


@pytest.mark.parametrize("scoring", SCORINGS)
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_batched_scores_equal_hflm(family, scoring):
    lm = _lm(family, scoring=scoring)
    reqs = _requests(lm)
    reference = HFLM._loglikelihood_tokens(lm, reqs, disable_tqdm=True)
    got = lm._loglikelihood_tokens(reqs, disable_tqdm=True)
    assert lm._scorer is not None and lm._scorer.checked
    assert [g for _, g in got] == [g for _, g in reference]
    assert any(g for _, g in got) and not all(g for _, g in got)
    assert torch.allclose(torch.tensor([s for s, _ in got]), torch.tensor([s for s, _ in reference]), atol=1e-4)


@pytest.mark.parametrize("scoring", SCORINGS)
def test_batch_size_does_not_change_scores(scoring):
    reqs = _requests(_lm("llama"))
    one = _lm("llama", batch_size=1, scoring=scoring)._loglikelihood_tokens(reqs, disable_tqdm=True)
    many = _lm("llama", batch_size=8, scoring=scoring)._loglikelihood_tokens(reqs, disable_tqdm=True)
    assert [g for _, g in one] == [g for _, g in many]
    assert [s for s, _ in one] == pytest.approx([s for s, _ in many], abs=1e-4)


@pytest.mark.parametrize("scoring", SCORINGS)
def test_a_request_sharing_a_longer_requests_row_is_scored_on_its_own_positions(scoring):
    """``context + continuation[:-1]`` equal, continuation lengths not: the shorter request is scored at the trailing
    positions, as if alone. (HFLM's ``torch.gather`` there reads the leading positions of the longer one; a group
    like this does not occur within one multiple-choice document, where the context is shared.)"""
    lm = _lm("llama", scoring=scoring)
    shared = list(range(10, 19))
    reqs = [(("one", "a"), shared, [3]), (("split", "b"), shared[:-2], shared[-2:] + [7])]
    got = lm._loglikelihood_tokens(reqs, disable_tqdm=True)
    with torch.no_grad():
        logp = torch.log_softmax(lm.model(torch.tensor([shared])).logits[0].float(), -1)
    assert got[0][0] == pytest.approx(float(logp[-1, 3]), abs=1e-5)
    assert got[1][0] == pytest.approx(float(logp[-3, shared[-2]] + logp[-2, shared[-1]] + logp[-1, 7]), abs=1e-5)


@pytest.mark.parametrize("scoring", SCORINGS)
def test_a_head_it_cannot_reproduce_raises(scoring):
    lm = _lm("gemma3", scoring=scoring)
    lm._scorer.softcap = None  # the soft-capping left out: its logits are no longer the model's
    with pytest.raises(HeadMismatch, match="output head could not be reproduced"):
        lm._loglikelihood_tokens(_requests(lm), disable_tqdm=True)


def _multiple_choice(rng: random.Random, docs: int = 6) -> list:
    """Documents of one context and 2-4 continuations of varied lengths (the shape the shared scorer packs)."""
    reqs = []
    for d in range(docs):
        ctx = [rng.randrange(256) for _ in range(rng.randrange(3, 20))]
        for c in range(rng.randrange(2, 5)):
            reqs.append(((f"doc{d}", str(c)), ctx, [rng.randrange(256) for _ in range(rng.randrange(1, 7))]))
    return reqs


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_shared_contexts_give_each_gated_request_its_own_answer(family):
    """Gated (top-k, a dense prefix of 20% of each request's own positions), in float64 so that no top-k near-tie
    flips between shapes: the packed requests score as each one alone (HFLM's batches of one request), greedy flags
    included. Breaks if the tails saw each other, took the pack's row indices as positions, or if the dense prefix
    came from the pack's length."""
    from wina import WinaConfig, sparsify_

    rng = random.Random(1)
    answers = {}
    for scoring, batch_size in (("hflm", 1), ("shared", 7)):
        lm = _lm(family, batch_size=batch_size, scoring=scoring, dtype=torch.float64)
        sparsify_(lm.model, WinaConfig(sparsity=0.5, allocation="uniform", transform=False, dense_prefix=0.2))
        reqs = _multiple_choice(random.Random(1)) + _requests(lm)[:14]
        answers[scoring] = lm._loglikelihood_tokens(reqs, disable_tqdm=True)
    got, want = answers["shared"], answers["hflm"]
    assert [g for _, g in got] == [g for _, g in want]
    assert [s for s, _ in got] == pytest.approx([s for s, _ in want], abs=1e-6)
    del rng


def test_a_context_is_packed_once_and_batches_keep_one_dense_prefix():
    from experiments.harness.packs import plan

    ctx = list(range(30))
    reqs = [(ctx, [1, 2, 3]), (ctx, [4, 5]), (ctx, [6]), (ctx, [1, 2, 3]), ([9] * 120, [7, 8])]
    batches = plan(reqs, max_length=200, prefix_of=lambda n: n // 10, batch_size=3)
    packs = [p for b in batches for p in b]
    # one prefix per batch; at most batch_size requests, unless one pack holds more (a pack is never split)
    assert all(len({p.prefix for p in b}) == 1 and (sum(len(p.reads) for p in b) <= 3 or len(b) == 1)
               for b in batches)
    by_request = {r.request: p for p in packs for r in p.reads}
    # [1, 2, 3] twice and [6] (no tail) share the context with [4, 5]: 30 + 2 + 1 rows, each request's prefix 3
    assert by_request[0] is by_request[1] is by_request[3] is by_request[2]
    assert len(by_request[0]) == 30 + 2 + 1 and by_request[0].prefix == 3
    # a prefix of 12 of 121 positions, within the 120-token context
    assert by_request[4].prefix == 12 and len(by_request[4].shared) == 120
    # a dense prefix reaching into the tail: the whole input is the shared part, packed alone
    short = plan([([5], [1, 2, 3, 4])], max_length=200, prefix_of=lambda n: 3, batch_size=3)[0][0]
    assert short.shared == (5, 1, 2, 3) and short.tails == [] and short.rows(short.reads[0]) == [0, 1, 2, 3]


def test_a_group_longer_than_max_length_is_split_into_packs():
    from experiments.harness.packs import plan

    ctx = list(range(20))
    reqs = [(ctx, [c] * 15) for c in range(5)]  # 20 + 5 * 14 = 90 rows > 40
    packs = [p for b in plan(reqs, max_length=40, prefix_of=lambda n: 0, batch_size=100) for p in b]
    assert len(packs) > 1 and all(len(p) <= 40 for p in packs)
    assert sorted(r.request for p in packs for r in p.reads) == list(range(5))


def test_a_model_that_ignores_the_packing_mask_raises(monkeypatch):
    from experiments.harness import shared_scoring

    lm = _lm("llama", batch_size=8)
    def causal(seg, pos, config, dtype):  # plain causal attention: a tail sees the tails before it
        t = seg.shape[1]
        return torch.ones(t, t, dtype=torch.bool).tril().expand(seg.shape[0], 1, t, t)

    monkeypatch.setattr(shared_scoring, "attention_masks", causal)
    with pytest.raises(HeadMismatch, match="scored a packed request differently"):
        lm._loglikelihood_tokens(_multiple_choice(random.Random(0)), disable_tqdm=True)


def test_scoring_shared_refuses_an_attention_that_takes_no_mask():
    from experiments.harness.errors import HarnessError

    torch.manual_seed(0)
    model = FAMILIES["llama"]()
    model.config._attn_implementation = "flash_attention_2"
    with pytest.raises(HarnessError, match="scoring=shared needs sdpa or eager attention"):
        SessionLM(pretrained=model, tokenizer=byte_tokenizer(), batch_size=2, max_length=MAX_LENGTH, device="cpu",
                  scoring="shared")
