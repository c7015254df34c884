"""The lm-eval model the harness evaluates with: lm-eval's ``HFLM`` over the in-process model, registered as
``wina-hf``, that remembers its tokenization. A sweep evaluates many configurations of one loaded model on the
same requests; each ``(context, continuation)`` pair is tokenized once per process, not once per job.
Scoring is HFLM's own (``_loglikelihood_tokens``, ``generate_until``)."""

from __future__ import annotations

from contextlib import nullcontext

from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM


@register_model("wina-hf")
class SessionLM(HFLM):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._pairs: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
        self.stages = None  # a session.Stages of the running job: tokenize / loglikelihood loop / generate seconds

    def _stage(self, name: str):
        return nullcontext() if self.stages is None else self.stages(name)

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        with self._stage("lm_tokenize+loglikelihood"):
            return super().loglikelihood(requests, disable_tqdm=disable_tqdm)

    def _loglikelihood_tokens(self, *args, **kwargs):
        with self._stage("lm_loglikelihood_loop"):
            return super()._loglikelihood_tokens(*args, **kwargs)

    def generate_until(self, requests, disable_tqdm: bool = False):
        with self._stage("lm_generate"):
            return super().generate_until(requests, disable_tqdm=disable_tqdm)

    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        key = (context, continuation)
        if key not in self._pairs:
            self._pairs[key] = super()._encode_pair(context, continuation)
        return self._pairs[key]
