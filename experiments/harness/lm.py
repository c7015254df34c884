"""The lm-eval model the harness evaluates with: lm-eval's ``HFLM`` over the in-process model, registered as
``wina-hf``. A sweep evaluates many configurations of one loaded model on the same requests, so it
- remembers its tokenization: each ``(context, continuation)`` pair is tokenized once per process, not once per job;
- scores log-likelihood requests in batches: ``scoring=shared`` (``shared_scoring.SharedContextScorer``) runs each
  context once for all the requests that share it; ``scoring=hflm`` (``scoring.ContinuationScorer``) runs HFLM's
  batches. Both take the output head and log-softmax on the continuation positions only, one device sync per batch.
  A model or setting neither covers (not a causal LM, ``batch_size=auto``) takes HFLM's own
  ``_loglikelihood_tokens``.
Generation is HFLM's own ``generate_until``; prompts, requests and metrics are lm-eval's."""

from __future__ import annotations

from contextlib import nullcontext

import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

from experiments.harness.errors import HarnessError
from experiments.harness.scoring import ContinuationScorer
from experiments.harness.shared_scoring import SharedContextScorer

SCORERS = {"shared": SharedContextScorer, "hflm": ContinuationScorer}


@register_model("wina-hf")
class SessionLM(HFLM):
    def __init__(self, *args, scoring: str = "hflm", **kwargs) -> None:
        if scoring not in SCORERS:
            raise HarnessError(f"scoring={scoring!r} is not known; accepted: {', '.join(SCORERS)}")
        kwargs.setdefault("softmax_dtype", torch.float32)  # HFLM's fallback path scores as the batched one does
        super().__init__(*args, **kwargs)
        self._pairs: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
        self.stages = None  # a session.Stages of the running job: tokenize / loglikelihood loop / generate seconds
        self._scorer = None
        scorer = SCORERS[scoring]
        if self.backend == "causal" and isinstance(self.batch_size, int):
            if scorer.applies(self.model):
                self._scorer = scorer(self.model, self.max_length, self.batch_size, self._autocast)
            elif scoring == "shared" and ContinuationScorer.applies(self.model):
                raise HarnessError(f"scoring=shared needs sdpa or eager attention, not "
                                 f"{self.model.config._attn_implementation!r}; use scoring=hflm")

    def _autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=self.mixed_precision_dtype,
                              enabled=self.mixed_precision_dtype is not None)

    def _stage(self, name: str):
        return nullcontext() if self.stages is None else self.stages(name)

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        with self._stage("lm_tokenize+loglikelihood"):
            return super().loglikelihood(requests, disable_tqdm=disable_tqdm)

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs: int | None = None):
        with self._stage("lm_loglikelihood_loop"):
            if self._scorer is None or override_bs is not None:
                return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
            return self._scorer.score(requests, disable_tqdm=disable_tqdm or self.rank != 0,
                                      on_answer=lambda key, answer: self.cache_hook.add_partial("loglikelihood", key,
                                                                                                answer))

    def generate_until(self, requests, disable_tqdm: bool = False):
        with self._stage("lm_generate"):
            return super().generate_until(requests, disable_tqdm=disable_tqdm)

    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        key = (context, continuation)
        if key not in self._pairs:
            self._pairs[key] = super()._encode_pair(context, continuation)
        return self._pairs[key]
