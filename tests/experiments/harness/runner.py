"""Run the command line (``python run.py`` or ``python -m ...``) in a subprocess, from the repository root."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def run(args, tmp_path, env=None, module=None, hydra_dir=True):
    out = tmp_path / "run"
    cmd = [sys.executable, *(["-m", module] if module else ["run.py"]), *args]
    if hydra_dir:  # a run.py command: its Hydra folder and its results store in the test's folder
        cmd += [f"hydra.run.dir={out}"] + ([] if any(a.startswith("store=") for a in args) else
                                           [f"store={tmp_path / 'store'}"])
    proc = subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True, env={**os.environ, **(env or {})},
                          timeout=900)
    return proc, out


def error_line(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def record_file(tmp_path: Path) -> Path:
    """The one record a test's run wrote into its store."""
    found = sorted((tmp_path / "store").rglob("record.json"))
    assert len(found) == 1, found
    return found[0]
