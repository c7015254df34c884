"""What the harness takes from lm-eval's results: headlines, counts, per-document rows (no model needed)."""

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
