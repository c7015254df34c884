"""Sweep-level progress read from the results store: done/total and an ETA, whichever launcher runs the jobs.

Before Hydra starts a ``--multirun``, ``plan`` writes the folders of all its jobs into ``<store>/.sweeps/`` and
says how many the store already holds (they will be skipped); after each job, ``progress`` counts the records
present among them. Counting the store (not the jobs this process ran) keeps the count right for parallel
launchers (joblib, SLURM), whose workers inherit the plan's path in the environment.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from experiments.harness import store
from experiments.harness.record import RECORD_NAME
from wina.atomic import atomic_file

PLAN_ENV = "WINA_SWEEP_PLAN"


def _folders(jobs) -> list[str]:
    from experiments.harness.sparsity import method_config

    out = []
    for cfg in jobs:
        key = store.key_of(store.identity(cfg, method_config(cfg)))
        out.append(str(store.folder_of(cfg, key)))
    return list(dict.fromkeys(out))  # dense at several sparsities is one record


def _done(folders: list[str]) -> int:
    return sum((Path(f) / RECORD_NAME).exists() for f in folders)


def _duration(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def plan(jobs) -> None:
    if not jobs:
        return
    folders = _folders(jobs)
    done = _done(folders)
    path = Path(jobs[0].store).expanduser() / ".sweeps" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.json"
    with atomic_file(path, "w") as fh:
        json.dump({"started": time.time(), "done_at_start": done, "folders": folders}, fh)
    os.environ[PLAN_ENV] = str(path)
    print(f"sweep: {len(jobs)} jobs, {len(folders)} records; {done} already in the store (skipped), "
          f"{len(folders) - done} to run", flush=True)


def progress() -> None:
    """One line after a job: records done of the sweep's total, and the ETA from this sweep's pace."""
    path = os.environ.get(PLAN_ENV)
    if not path or not Path(path).exists():
        return
    p = json.loads(Path(path).read_text())
    total, done = len(p["folders"]), _done(p["folders"])
    elapsed = time.time() - p["started"]
    ran = done - p["done_at_start"]
    eta = f", ETA {_duration(elapsed / ran * (total - done))}" if ran > 0 and done < total else ""
    print(f"sweep: {done}/{total} records in the store ({ran} made by this sweep), elapsed {_duration(elapsed)}{eta}",
          flush=True)
