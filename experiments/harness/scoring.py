"""Batched continuation scoring for lm-eval's log-likelihood requests: the numbers HFLM's ``_loglikelihood_tokens``
computes, without its per-request work.

HFLM runs the whole model on a batch, takes a full-vocabulary log-softmax at every position, then walks the
requests one by one in Python (two device syncs each). This computes the same quantities the same way, in the same
batches: lm-eval's ``Collator`` orders and groups the requests exactly as HFLM does (longest first; requests sharing
``context + continuation[:-1]`` share a row), each batch is right-padded to its longest input, and the decoder's
hidden states are taken at the continuation positions only; the output head (with the model's logit soft-capping,
if it has one) and a float32 log-softmax run on those rows; the log-likelihood sums and greedy checks of every
request of the batch come back in one transfer, read once the next batch is queued (the host builds batch i + 1
while the device computes batch i).

What differs from HFLM, by design: the log-softmax is in float32 (HFLM's default is the model's dtype; the
harness sets ``softmax_dtype=float32`` on both paths), and the head runs on the gathered rows (in bf16 that may
round a logit differently in its last bit). The first batch of every model is checked against the model's own
forward (``check_head``); a model whose head this cannot reproduce raises rather than scoring wrongly.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from lm_eval.models.utils import Collator
from tqdm import tqdm

from wina.gated import uncounted
from wina.transfer import to_device_async


class HeadMismatch(RuntimeError):
    pass


def _sort_key(req):
    toks = req[1] + req[2]
    return -len(toks), tuple(toks)  # HFLM's order: longest first


def _group_key(req):
    return req[1] + req[2][:-1]  # HFLM's one-token-continuation groups


class ContinuationScorer:
    """Scores ``(key, context_tokens, continuation_tokens)`` requests with a causal HF model."""

    def __init__(self, model, max_length: int, batch_size: int, autocast=None) -> None:
        self.model, self.max_length, self.batch_size = model, max_length, batch_size
        self.decoder = model.base_model
        self.head = model.get_output_embeddings()
        config = getattr(model.config, "text_config", None) or model.config
        self.softcap = getattr(config, "final_logit_softcapping", None)
        self.autocast = autocast
        self.checked = False

    @staticmethod
    def applies(model) -> bool:
        return model.base_model is not model and model.get_output_embeddings() is not None

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        out = self.head(hidden)
        if self.softcap is not None:
            out = torch.tanh(out / self.softcap) * self.softcap
        return out

    def check_head(self, ids: torch.Tensor, rows: torch.Tensor, got: torch.Tensor, **forward) -> None:
        """The logits of ``rows`` (flat ``batch * length`` indices) equal the model's own forward's (a forward the
        gated modules do not count: the measured sparsity is the evaluation's); ``forward``: its other arguments."""
        with uncounted(self.model):
            want = self.model(input_ids=ids, use_cache=False, **forward).logits.flatten(0, 1)[rows]
        scale = float(want.float().abs().max().clamp_min(1.0))
        diff = float((got.float() - want.float()).abs().max())
        if diff > 2e-2 * scale:
            raise HeadMismatch(f"batched scoring: {type(self.model).__name__}'s output head could not be reproduced "
                               f"(largest logit difference {diff:.3g}); use lm-eval's own model instead")
        self.checked = True

    @torch.no_grad()
    def score(self, requests, disable_tqdm: bool = False, on_answer=None) -> list[tuple[float, bool]]:
        order = Collator(requests, sort_fn=_sort_key, group_by="contexts", group_fn=_group_key)
        answers: list[tuple[float, bool]] = []
        device = next(self.model.parameters()).device

        def take(batch):
            for key, answer in batch:
                if on_answer is not None and key is not None:
                    on_answer(key, answer)
                answers.append(answer)

        pipelined((self._launch_batch(chunk, order, device) for chunk in order.get_batched(n=self.batch_size)),
                  len(requests), disable_tqdm, take)
        return order.get_original(answers)

    def _launch_batch(self, chunk, order: Collator, device) -> "_PendingBatch":
        """Queue one batch's forward and reductions on the device without waiting for it: every host-to-device
        copy comes from pinned memory and the answers come back into pinned memory, so that building the next batch
        on the host overlaps this batch's device work (``score`` reads a batch's answers after the next is queued)."""
        if any(not ctx or not cont or len(cont) > self.max_length for _, ctx, cont in chunk):
            raise ValueError("a log-likelihood request with an empty context or continuation, or a continuation longer "
                             f"than max_length={self.max_length}")
        inputs = [(ctx + cont)[-(self.max_length + 1):][:-1] for _, ctx, cont in chunk]
        width = max(len(t) for t in inputs)
        ids = torch.tensor([t + [0] * (width - len(t)) for t in inputs], dtype=torch.long)  # right padding, as HFLM
        rows, starts = [], []
        for b, ((_, _, cont), tokens) in enumerate(zip(chunk, inputs)):
            starts.append(len(rows))
            rows.extend(range(b * width + len(tokens) - len(cont), b * width + len(tokens)))
        # Each request of a group takes the trailing rows of its representative, as HFLM's get_cache does. Its
        # tokens go to its own row of a [requests, longest] grid, summed per row: the same order on every run.
        keys, member_rows, targets, slots = [], [], [], []
        longest = max(len(cont) for _, _, cont in chunk)
        for b, (key, ctx, cont) in enumerate(chunk):
            rep_rows = torch.arange(starts[b], starts[b] + len(cont)).view(1, -1, 1)
            for m_key, m_cont, m_rows in order.get_cache(req_str=key, cxt_toks=ctx, cont_toks=cont, logits=rep_rows):
                slots.extend(range(len(keys) * longest, len(keys) * longest + len(m_cont)))
                member_rows.extend(m_rows[0, -len(m_cont):, 0].tolist())
                targets.extend(m_cont)
                keys.append(m_key)
        ids, rows_t = to_device_async(ids, device), to_device_async(torch.tensor(rows), device)
        member_rows_t, targets_t, slots_t = to_device_async(torch.tensor([member_rows, targets, slots]), device)
        with self.autocast() if self.autocast else torch.no_grad():
            hidden = self.decoder(input_ids=ids, use_cache=False).last_hidden_state
            logits = self.logits(hidden.flatten(0, 1)[rows_t])
        if not self.checked:
            self.check_head(ids, rows_t, logits)
        return answers_of(logits, member_rows_t, targets_t, slots_t, keys, longest)


def answers_of(logits: torch.Tensor, rows: torch.Tensor, targets: torch.Tensor, slots: torch.Tensor, keys: list,
               longest: int) -> "_PendingBatch":
    """The answers of a batch, queued: each scored token (its row of ``logits``, its target) goes to its slot in a
    [requests, longest] grid of float32 log-probabilities and greedy misses, summed per request (the same order on
    every run)."""
    logp = F.log_softmax(logits, dim=-1, dtype=torch.float32)
    grid = torch.zeros(2, len(keys) * longest, device=logits.device, dtype=torch.float32)
    grid[0, slots] = logp[rows, targets]
    grid[1, slots] = (logp.argmax(-1)[rows] != targets).to(torch.float32)
    return _PendingBatch(keys, grid.view(2, len(keys), longest).sum(-1))


def pipelined(launches, total: int, disable_tqdm: bool, take) -> None:
    """Drain ``launches`` (an iterator that queues one batch on the device per step and yields its
    ``_PendingBatch``): each batch's answers are read, and handed to ``take``, only once the next batch is queued, so
    that the host builds batch i + 1 while the device computes batch i. A progress bar over ``total`` requests."""
    with tqdm(total=total, disable=disable_tqdm, desc="Running loglikelihood requests") as bar:
        pending = None
        for launched in itertools.chain(launches, [None]):  # None: nothing more to queue, read the last batch
            if pending is not None:
                batch = pending.answers()
                take(batch)
                bar.update(len(batch))
            pending = launched


class _PendingBatch:
    """A batch's answers (log-likelihood sum, greedy) on their way back from the device."""

    def __init__(self, keys: list, sums_misses: torch.Tensor) -> None:
        self.keys = keys
        if sums_misses.is_cuda:
            self.host = torch.empty(sums_misses.shape, dtype=sums_misses.dtype, pin_memory=True)
            self.host.copy_(sums_misses, non_blocking=True)
            self.ready = torch.cuda.Event()
            self.ready.record()
        else:
            self.host, self.ready = sums_misses, None

    def answers(self) -> list:
        if self.ready is not None:
            self.ready.synchronize()
        sums, misses = self.host.tolist()
        return [(k, (s, m == 0)) for k, s, m in zip(self.keys, sums, misses)]
