"""Run lm-eval's ``simple_evaluate`` on an in-process model and summarise what it reports."""

from __future__ import annotations

import logging
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from experiments.harness.errors import HarnessError
from experiments.harness.record import TaskResult
from experiments.harness.tasks import TaskSpec, write_local_task_configs

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


def run_lm_eval(model, tokenizer, specs: list[TaskSpec], *, data_source: str, data_dir: Path | None,
                limit: int | float | None, batch_size: int, num_fewshot: int | None, max_length: int | None = None,
                seed: int = 0) -> dict:
    """Evaluate and return lm-eval's results dict (``results``, ``n-samples``, ``configs``, ...)."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1" if data_source == "local" else "0")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=max_length)
    with tempfile.TemporaryDirectory(prefix="wina-tasks-") as tmp, _hub_errors(data_source):
        results = simple_evaluate(
            model=lm,
            tasks=[s.lm_eval_task for s in specs],
            num_fewshot=num_fewshot,
            limit=limit,
            task_manager=_task_manager(specs, data_source, data_dir, Path(tmp)),
            log_samples=True,  # per-document outcomes (outcomes.jsonl.gz beside the record)
            random_seed=seed,
            numpy_random_seed=seed,
            torch_random_seed=seed,
            fewshot_random_seed=seed,
        )
    return results


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
    lm-eval computed them (``acc``, ``acc_norm``, ``exact_match``, ...), so two runs on the same documents can be
    compared pairwise."""
    rows = []
    for task, samples in (results.get("samples") or {}).items():
        for smp in samples:
            metrics = {k: v for k, v in smp.items() if k in smp.get("metrics", ()) and isinstance(v, (int, float))}
            rows.append({"task": task, "doc_id": smp["doc_id"], "filter": smp.get("filter"), **metrics})
    return rows
