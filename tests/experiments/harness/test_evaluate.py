"""What the harness takes from lm-eval's results: headlines, counts, per-document rows (no model needed)."""

import json

import pytest

from experiments.harness.evaluate import headline, per_document, summarise
from experiments.harness.tasks import check_task_names


def test_headline_prefers_acc_norm_then_flexible_exact_match_then_acc():
    assert headline({"acc,none": 0.4, "acc_norm,none": 0.5}) == ("acc_norm,none", 0.5)
    assert headline({"exact_match,flexible-extract": 0.1, "acc,none": 0.4}) == ("exact_match,flexible-extract", 0.1)
    assert headline({"acc,none": 0.4, "acc_stderr,none": 0.01}) == ("acc,none", 0.4)
    assert headline({"alias": "x"}) is None


def test_summarise_and_per_document_rows():
    results = {
        "results": {"piqa": {"alias": "piqa", "acc,none": 0.5, "acc_norm,none": 0.75, "acc_norm_stderr,none": 0.2}},
        "n-samples": {"piqa": {"original": 1838, "effective": 4}},
        "samples": {"piqa": [{"doc_id": i, "filter": "none", "metrics": ["acc", "acc_norm"], "acc": float(i % 2),
                              "acc_norm": float(i < 3), "resps": [["raw"]],
                              "filtered_resps": [[-1.5 - i, False], [-0.5, True]]} for i in range(4)]},
    }
    (spec,) = check_task_names(["piqa"])
    t = summarise(results, [spec])["piqa"]
    assert (t.headline_metric, t.headline, t.headline_stderr, t.n_docs_evaluated, t.n_docs_total) == \
        ("acc_norm,none", 0.75, 0.2, 4, 1838)
    rows = per_document(results)
    assert rows[0] == {"task": "piqa", "doc_id": 0, "filter": "none", "acc": 0.0, "acc_norm": 1.0,
                       "resps": [[-1.5, False], [-0.5, True]]}  # the filtered responses: per choice [ll, greedy]
    assert sum(r["acc_norm"] for r in rows) / len(rows) == t.headline


@pytest.mark.real
def test_a_later_evaluation_reuses_what_comes_from_the_documents_alone(data_dir, monkeypatch):
    """The second evaluation of prepared tasks iterates no dataset row, renders no choice, target or text and
    serializes no document (for its doc_hash) again, and its per-document samples equal those of tasks evaluated
    without the reuse (winogrande: its gold comes from doc_to_text)."""
    from lm_eval.api.task import ConfigurableTask, Task

    from experiments.bench.lm_eval_post import AnswersByRequest
    from experiments.harness import evaluate as ev

    calls = {}

    def counted(cls, name):
        original = getattr(cls, name)

        def wrapper(self, *args, **kwargs):
            calls[name] = calls.get(name, 0) + 1
            return original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, wrapper)

    counted(Task, "doc_iterator")
    dumps = json.dumps
    monkeypatch.setattr(json, "dumps", lambda obj, **kw: (calls.__setitem__("doc_dump", calls.get("doc_dump", 0) + 1)
                                                          if kw.get("indent") == 2 else None, dumps(obj, **kw))[1])
    for name in ("doc_to_choice", "doc_to_target", "doc_to_text"):
        counted(ConfigurableTask, name)
    specs = check_task_names(["piqa", "winogrande"])
    prepare = lambda: ev.PreparedTasks(specs, data_source="local", data_dir=data_dir, num_fewshot=None, seed=1234)
    lm = AnswersByRequest().lm
    tasks = prepare()
    first = tasks.evaluate(lm, 15)
    assert all(calls.get(n) for n in ("doc_iterator", "doc_to_choice", "doc_to_target", "doc_to_text", "doc_dump"))
    calls.clear()
    second = tasks.evaluate(lm, 15)
    assert calls == {}
    monkeypatch.setattr(ev, "_doc_values_once", lambda task: None)
    monkeypatch.setattr(ev, "_DocDumps", lambda: json)
    plain = prepare().evaluate(lm, 15)
    for results in (first, second):
        assert results["samples"] == plain["samples"] and results["results"] == plain["results"]
