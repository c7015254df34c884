"""Evaluate an in-process model with lm-eval (its tasks, prompts, metrics and ``evaluate``) and summarise what it
reports; task objects and their requests are prepared once per process and reused by a sweep's jobs."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from contextlib import contextmanager, nullcontext
from pathlib import Path
from unittest import mock

from experiments.harness.errors import HarnessError
from experiments.harness.record import TaskResult
from experiments.harness.tasks import TaskSpec, write_local_task_configs
from experiments.harness.templates import compile_templates_once

# The metric a paper table shows for a task: acc_norm where the task has it, else GSM8K's
# flexible-extract exact match, else acc (the WINA paper's convention).
HEADLINE_ORDER = ("acc_norm,none", "exact_match,flexible-extract", "acc,none")


def headline(metrics: dict) -> tuple[str, float] | None:
    for key in HEADLINE_ORDER:
        if isinstance(metrics.get(key), (int, float)):
            return key, float(metrics[key])
    return None


@contextmanager
def _hub_errors(data_source: str):
    """With ``data=hub`` a dataset that cannot be fetched is the user's problem to fix, not a traceback."""
    try:
        yield
    except OSError as exc:  # requests' and huggingface_hub's connection errors, datasets' not-found errors
        if data_source != "hub":
            raise
        raise HarnessError(f"data=hub: a task's dataset could not be loaded from the hub ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}); use data=local") from None


def _task_manager(specs: list[TaskSpec], data_source: str, data_dir: Path | None, workdir: Path):
    from lm_eval.tasks import TaskManager

    if data_source == "hub":
        return TaskManager()
    write_local_task_configs(specs, data_dir, workdir)
    return TaskManager(include_path=str(workdir), include_defaults=False)


class PreparedTasks:
    """lm-eval's task objects for one setting (tasks, data, few-shot, seed, limit), loaded once and evaluated by
    every job of a sweep: the requests (few-shot contexts) are built by lm-eval on the first evaluation and
    reused, emptied of their responses, by the later ones. Everything else is lm-eval's ``evaluate``."""

    def __init__(self, specs: list[TaskSpec], *, data_source: str, data_dir: Path | None,
                 num_fewshot: int | None, seed: int) -> None:
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1" if data_source == "local" else "0")
        logging.getLogger("lm_eval").setLevel(logging.WARNING)
        compile_templates_once()
        self.data_source, self._workdir = data_source, tempfile.TemporaryDirectory(prefix="wina-tasks-")
        self._doc_dumps = _DocDumps()
        self.seed = seed
        self._seed()
        with _hub_errors(data_source):
            self.loaded = _task_manager(specs, data_source, data_dir, Path(self._workdir.name)).load(
                [s.lm_eval_task for s in specs])
        for task in self.loaded["tasks"].values():  # what simple_evaluate does to the tasks it loads
            if num_fewshot is not None and task.get_config("num_fewshot") != 0:
                task.set_config(key="num_fewshot", value=num_fewshot)
            elif task.get_config("num_fewshot") is None:
                task.set_config(key="num_fewshot", value=0)
            task.set_fewshot_seed(seed=seed)
            _build_requests_once(task, self)
            _doc_values_once(task)
        self.stages = None  # a session.Stages of the running job

    def _seed(self) -> None:
        """The seeds simple_evaluate sets (Python, NumPy, torch; the few-shot sampler's is set per task)."""
        import random

        import numpy as np
        import torch

        random.seed(self.seed)
        np.random.seed(self.seed)
        torch.manual_seed(self.seed)

    def evaluate(self, lm, limit: int | float | None, stages=None) -> dict:
        """lm-eval's results dict (``results``, ``n-samples``, ``samples``, ...) for ``lm`` on these tasks;
        ``stages`` (a ``session.Stages``) receives the seconds spent building requests and in the model."""
        from lm_eval import evaluator

        self._seed()
        self.stages = lm.stages = stages
        try:
            with _hub_errors(self.data_source), mock.patch.object(evaluator, "json", self._doc_dumps):
                return evaluator.evaluate(lm=lm, task_dict=self.loaded, limit=limit,
                                          log_samples=True)  # per-document outcomes (outcomes.jsonl.gz, the record's)
        finally:
            self.stages = lm.stages = None


def _build_requests_once(task, owner: PreparedTasks) -> None:
    """Let lm-eval build ``task``'s requests on the first evaluation; later evaluations with the same arguments
    reuse them with their responses cleared (a different ``limit`` builds anew)."""
    build = task.build_all_requests
    built: dict = {}

    def build_or_reuse(**kwargs):
        if built.get("kwargs") == kwargs:
            for inst in task.instances:
                inst.resps, inst.filtered_resps = [], {}
            return
        with owner.stages("lm_eval_build_requests") if owner.stages else nullcontext():
            build(**kwargs)
        built["kwargs"] = kwargs

    task.build_all_requests = build_or_reuse


def _doc_values_once(task) -> None:
    """What lm-eval's scoring of the answers derives from the documents alone (the evaluated split's rows; each row's
    choices, target and text, rendered from the task's templates) is computed by the first evaluation and reused by
    the later ones: a sweep's later job pays only for what depends on its answers. The rows are the same objects
    every time, so a value is kept per row object."""
    iterate, listed = task.doc_iterator, {}

    def doc_iterator(**kwargs):
        key = json.dumps(kwargs, sort_keys=True, default=str)
        if key not in listed:
            listed[key] = list(iterate(**kwargs))
        return iter(listed[key])

    task.doc_iterator = doc_iterator
    for name in ("doc_to_choice", "doc_to_target", "doc_to_text"):
        setattr(task, name, _kept_per_object(getattr(task, name)))


def _kept_per_object(derive):
    """``derive(obj, *args, **kwargs)``, computed once per object and arguments: kept with the object, so that its id
    cannot be reused by another, and with the arguments, so that other ones compute anew."""
    kept: dict[int, tuple] = {}  # id(obj) -> (obj, (args, kwargs), value)

    def per_object(obj, *args, **kwargs):
        hit = kept.get(id(obj))
        if hit is None or hit[0] is not obj or hit[1] != (args, kwargs):
            hit = kept[id(obj)] = (obj, (args, kwargs), derive(obj, *args, **kwargs))
        return hit[2]

    return per_object


class _DocDumps:
    """Stands in for ``json`` in ``lm_eval.evaluator`` while prepared tasks are evaluated. Its one ``json.dumps``
    serializes each request's document for the sample's ``doc_hash``; those documents are the requests' own objects,
    the same at every evaluation (the requests are reused), so each is serialized once."""

    def __init__(self) -> None:
        self.dumps = _kept_per_object(json.dumps)

    def __getattr__(self, name: str):
        return getattr(json, name)


def make_lm(model, tokenizer, batch_size: int, max_length: int | None, scoring: str = "hflm"):
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from experiments.harness.lm import SessionLM

    return SessionLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=max_length,
                     scoring=scoring)


def summarise(results: dict, specs: list[TaskSpec]) -> dict[str, TaskResult]:
    """Per requested task: all metrics with stderr as lm-eval reports them, the headline metric, counts."""
    out = {}
    n_samples = results.get("n-samples", {})
    group_subtasks = results.get("group_subtasks", {})
    for spec in specs:
        name = spec.lm_eval_task
        raw = {k: v for k, v in results["results"].get(name, {}).items() if k != "alias"}
        members = group_subtasks.get(name) or [name]
        leaves = []
        while members:
            m = members.pop()
            if group_subtasks.get(m):
                members.extend(group_subtasks[m])
            else:
                leaves.append(m)
        counts = [n_samples.get(m, {}) for m in leaves]
        head = headline(raw)
        out[spec.name] = TaskResult(
            lm_eval_task=name,
            metrics=raw,
            headline_metric=head[0] if head else None,
            headline=head[1] if head else None,
            headline_stderr=raw.get(head[0].replace(",", "_stderr,", 1)) if head else None,
            n_docs_evaluated=sum(c.get("effective", 0) for c in counts),
            n_docs_total=sum(c.get("original", 0) for c in counts),
            note=spec.note,
        )
    return out


def per_document(results: dict) -> list[dict]:
    """One row per evaluated document (and filter) of every task: its id and its per-document metric values as
    lm-eval computed them (``acc``, ``acc_norm``, ``exact_match``, ...) and the model's filtered responses
    (``resps``: per choice ``[log-likelihood, is_greedy]``, or the generated answer), so two runs on the same
    documents can be compared pairwise."""
    rows = []
    for task, samples in (results.get("samples") or {}).items():
        for smp in samples:
            metrics = {k: v for k, v in smp.items() if k in smp.get("metrics", ()) and isinstance(v, (int, float))}
            rows.append({"task": task, "doc_id": smp["doc_id"], "filter": smp.get("filter"), **metrics,
                         "resps": smp.get("filtered_resps")})  # log-likelihoods per choice, or the generated text
    return rows
