"""Log-likelihood requests that share a context, scored in one sequence (``scoring=shared``; the default is ``hflm``).

lm-eval's multiple-choice tasks send one request per choice, each repeating the document's context: on SmolLM2's
paper8 sets, 73,106 requests of 5.46M padded tokens hold 2.55M tokens once each context is counted once
(``packs``). This scorer runs each context once with all its choices' continuations after it, under an attention
mask that lets a continuation see the context and itself only, at the positions it has in its own request; so each
position computes what it computes when its request is scored alone (up to the order of floating-point sums in the
matmuls and attention). Scores, greedy checks, the output head and the float32 log-softmax are the batched scorer's
(``scoring.ContinuationScorer``).

The token policy's dense prefix is taken from each request's own input length (``packs``); ``scoring=hflm`` is
HFLM's batching instead, where a batch's padded width sets it. A model whose attention cannot take this mask (other
than ``sdpa`` or ``eager``), or whose first packed batch does not reproduce its requests scored one by one, raises.

Measured (session 10; results/sweeps/README.md): on 2 CPU cores the quick tasks' loop of WINA at 65% took 30.6 s
against 43.3 s with ``hflm``. On an H100 (paper8 full sets, bf16, batch 256) the dense loop took 13.1-16.3 s against
19.2 s, but the gated loop 43.5-48.9 s against 22.3-27.7 s: with a mask, SDPA's default (cuDNN) attention spends
~11 ms of host time per call building plans. Forcing memory-efficient attention gave a 22.1 s gated loop, but the
first packed batch's logits then differed from its requests' alone by 0.44 (bf16), so it is not used; until that is
resolved ``hflm`` stays the default.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from experiments.harness import packs as packing
from experiments.harness.scoring import ContinuationScorer, HeadMismatch, _PendingBatch, answers_of, pipelined
from wina.gated import token_policies, ungated
from wina.transfer import to_device_async

MASK_IMPLEMENTATIONS = ("sdpa", "eager")


def attention_masks(seg: torch.Tensor, pos: torch.Tensor, config, dtype: torch.dtype):
    """The decoder's ``attention_mask`` for packed rows: ``seg`` [B, T] is 0 on a pack's shared part, ``t + 1`` on
    its tail ``t``, -1 on padding; ``pos`` [B, T] the positions. A row sees earlier rows of the shared part and of its
    own tail (padding sees itself); sliding-window layers also only the last ``sliding_window`` positions. A 4D mask,
    or one per layer type for models that take a dict (``config.layer_types``)."""
    rows = torch.arange(seg.shape[1], device=seg.device)
    q_seg, k_seg = seg[:, :, None], seg[:, None, :]
    allowed = (rows[:, None] >= rows[None, :]) & (((k_seg == 0) & (q_seg >= 0)) | (k_seg == q_seg))

    def formatted(m: torch.Tensor) -> torch.Tensor:
        m = m[:, None]
        if config._attn_implementation == "sdpa":
            return m
        return torch.zeros(m.shape, dtype=dtype, device=m.device).masked_fill_(~m, torch.finfo(dtype).min)

    types = getattr(config, "layer_types", None)
    if not types:
        return formatted(allowed)
    out = {}
    for kind in set(types):
        if kind == "sliding_attention":
            near = (pos[:, :, None] - pos[:, None, :]) < config.sliding_window
            out[kind] = formatted(allowed & near)
        else:
            out[kind] = formatted(allowed)
    return out


class SharedContextScorer(ContinuationScorer):
    """Scores ``(key, context_tokens, continuation_tokens)`` requests with a causal HF model, contexts shared."""

    def __init__(self, model, max_length: int, batch_size: int, autocast=None) -> None:
        super().__init__(model, max_length, batch_size, autocast)
        self.config = getattr(model.config, "text_config", None) or model.config
        self.packing_checked = False

    @staticmethod
    def applies(model) -> bool:
        config = getattr(model.config, "text_config", None) or model.config
        return ContinuationScorer.applies(model) and config._attn_implementation in MASK_IMPLEMENTATIONS

    def _policy(self):
        policies = token_policies(self.model)
        if len({(p.dense_prefix, p.rounding) for p in policies}) > 1:
            raise ValueError("scoring=shared: the gated modules have different token policies; use scoring=hflm")
        return policies[0] if policies else None

    @torch.no_grad()
    def score(self, requests, disable_tqdm: bool = False, on_answer=None) -> list[tuple[float, bool]]:
        policy = self._policy()
        prefix_of = policy.of_length if policy is not None else (lambda n: 0)
        batches = packing.plan([(ctx, cont) for _, ctx, cont in requests], self.max_length, prefix_of,
                               self.batch_size)
        answers: list = [None] * len(requests)
        device = next(self.model.parameters()).device

        def take(batch):
            for i, answer in batch:
                if on_answer is not None and requests[i][0] is not None:
                    on_answer(requests[i][0], answer)
                answers[i] = answer

        pipelined((self._launch_packs(batch, device, policy) for batch in batches), len(requests), disable_tqdm, take)
        return answers

    def _tensors(self, batch: list[packing.Pack]):
        """Host tensors of a batch: ids, positions and segments [B, T]; the flat rows whose logits are needed; per
        read position: its index among those rows, its target and its slot in a [reads, longest] grid; and the read
        request indices. (The rows are deduplicated here: ``torch.unique`` on the device would wait for it.)"""
        width = max(len(p) for p in batch)
        ids, pos, seg = [], [], []
        flat_rows, targets, slots, order = [], [], [], []
        longest = max(len(r.targets) for p in batch for r in p.reads)
        for b, pack in enumerate(batch):
            tokens, positions, segments = list(pack.shared), list(range(len(pack.shared))), [0] * len(pack.shared)
            for t, tail in enumerate(pack.tails):
                tokens += tail
                positions += range(len(pack.shared), len(pack.shared) + len(tail))
                segments += [t + 1] * len(tail)
            pad = width - len(tokens)
            ids.append(tokens + [0] * pad)
            pos.append(positions + [0] * pad)
            seg.append(segments + [-1] * pad)
            for read in pack.reads:
                slot0 = len(order) * longest
                flat_rows.extend(b * width + r for r in pack.rows(read))
                targets.extend(read.targets)
                slots.extend(range(slot0, slot0 + len(read.targets)))
                order.append(read.request)
        needed = sorted(set(flat_rows))
        index = {r: i for i, r in enumerate(needed)}
        return (torch.tensor(ids), torch.tensor(pos), torch.tensor(seg, dtype=torch.int32), torch.tensor(needed),
                torch.tensor([[index[r] for r in flat_rows], targets, slots]), order, longest)

    def _launch_packs(self, batch: list[packing.Pack], device, policy) -> _PendingBatch:
        ids, pos, seg, needed, gather, order, longest = self._tensors(batch)
        ids, pos, seg, needed = (to_device_async(t, device) for t in (ids, pos, seg, needed))
        member, targets, slots = to_device_async(gather, device)
        dtype = next(self.model.parameters()).dtype
        with policy.fixed(batch[0].prefix) if policy is not None else nullcontext():
            mask = attention_masks(seg, pos, self.config, dtype)
            with self.autocast() if self.autocast else nullcontext():
                hidden = self.decoder(input_ids=ids, position_ids=pos, attention_mask=mask,
                                      use_cache=False).last_hidden_state
                logits = self.logits(hidden.flatten(0, 1)[needed])
            if not self.checked:
                self.check_head(ids, needed, logits, position_ids=pos, attention_mask=mask)
            if not self.packing_checked:
                self.check_packing(batch[0], ids[:1], pos[:1], mask)
        return answers_of(logits, member, targets, slots, order, longest)

    def check_packing(self, pack: packing.Pack, ids: torch.Tensor, pos: torch.Tensor, mask) -> None:
        """The first pack (row 0 of ``ids``, ``pos``, ``mask``) and its requests each scored alone (own input, no
        mask) give the same logits in the dense model: a model that ignores the mask or the positions raises here
        rather than scoring wrongly. (Gated, fp32 noise between two shapes can flip a top-k near-tie.)"""
        first = {k: v[:1] for k, v in mask.items()} if isinstance(mask, dict) else mask[:1]
        with ungated(self.model), self.autocast() if self.autocast else nullcontext():
            packed = self.model(input_ids=ids, position_ids=pos, attention_mask=first, use_cache=False).logits[0]
            for read in pack.reads:
                tail = pack.tails[read.tail] if read.tail >= 0 else ()
                alone = torch.tensor([list(pack.shared) + list(tail)], device=ids.device)
                want = self.model(input_ids=alone, use_cache=False).logits[0, -len(read.targets):]
                got = packed[pack.rows(read)]
                scale = float(want.float().abs().max().clamp_min(1.0))
                diff = float((got.float() - want.float()).abs().max())
                if diff > 2e-2 * scale:
                    raise HeadMismatch(f"scoring=shared: {type(self.model).__name__} scored a packed request "
                                       f"differently from the request alone (largest logit difference {diff:.3g}); "
                                       f"use scoring=hflm")
        self.packing_checked = True
