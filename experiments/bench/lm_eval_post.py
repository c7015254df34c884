"""What lm-eval's evaluation costs a sweep's job besides the model: prepared tasks evaluated with a model-free LM
(each request's answer a fixed function of its text), first and later evaluations, with the document-derived
values kept between evaluations (``experiments.harness.evaluate._doc_values_once`` and ``_DocDumps``, as jobs run)
and without.

    python -m experiments.bench.lm_eval_post [--tasks paper8] [--limit N] [--repeats 3]

Prints seconds per evaluation for both, the later evaluations' ratio, and whether both gave the same results and
per-document samples.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from unittest import mock


class AnswersByRequest:
    """An lm-eval LM (``.lm``) whose log-likelihood of a request is a fixed function of its arguments: no model."""

    def __init__(self) -> None:
        from lm_eval.api.model import LM

        self.lm = type("AnswersByRequest", (LM,), dict(
            loglikelihood=lambda _, reqs, disable_tqdm=False: [self.answer(r.args) for r in reqs],
            loglikelihood_rolling=None, generate_until=None))()

    @staticmethod
    def answer(args) -> tuple[float, bool]:
        h = int(hashlib.sha256(repr(args).encode()).hexdigest()[:8], 16)
        return -(h % 1000) / 37.0, h % 3 == 0


def evaluations(tasks_option: str, limit: int | None, repeats: int, keep: bool) -> tuple[list[float], dict]:
    """Seconds of each of ``repeats`` evaluations of one set of prepared tasks, and the last one's results."""
    from experiments.harness import evaluate as ev
    from experiments.harness.assets import default_cache_dir
    from experiments.harness.schema import load_option
    from experiments.harness.task_data import ensure_data
    from experiments.harness.tasks import check_task_names

    data_dir = ensure_data(load_option("data", "local"), default_cache_dir())[0]
    specs = check_task_names(list(load_option("tasks", tasks_option).names))
    with mock.patch.object(ev, "_doc_values_once", ev._doc_values_once if keep else (lambda task: None)), \
            mock.patch.object(ev, "_DocDumps", ev._DocDumps if keep else (lambda: json)):
        tasks = ev.PreparedTasks(specs, data_source="local", data_dir=data_dir, num_fewshot=None, seed=1234)
    lm, seconds, results = AnswersByRequest().lm, [], None
    for _ in range(repeats):
        start = time.perf_counter()
        results = tasks.evaluate(lm, limit)
        seconds.append(time.perf_counter() - start)
    return seconds, results


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default="paper8", help="a conf/tasks option")
    ap.add_argument("--limit", type=int, default=None, help="documents per task (default: the full sets)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    runs = {keep: evaluations(args.tasks, args.limit, args.repeats, keep) for keep in (False, True)}
    for keep, (seconds, results) in runs.items():
        docs = sum(len(v) for v in results["samples"].values())
        print(f"{'kept' if keep else 'not kept'}: {docs} documents; seconds per evaluation "
              + ", ".join(f"{s:.2f}" for s in seconds), flush=True)
    later = {keep: sum(s[1:]) / max(len(s) - 1, 1) for keep, (s, _) in runs.items()}
    (_, plain), (_, kept) = runs[False], runs[True]
    print(f"later evaluations: {later[False]:.2f} s not kept, {later[True]:.2f} s kept "
          f"({later[False] / later[True]:.2f}x); the same results and samples: "
          f"{plain['samples'] == kept['samples'] and plain['results'] == kept['results']}")


if __name__ == "__main__":
    main()
