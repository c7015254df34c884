"""``pip install .`` (not only -e) carries the Hydra configs and the tuned kernel table, and installs the card's
four top-level packages and nothing else."""

import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP = {"wina", "baselines", "kernels", "experiments"}


def test_package_list_is_complete():
    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {str(p.parent.relative_to(ROOT)).replace(os.sep, ".") for top in TOP for p in (ROOT / top).rglob("__init__.py")}
    assert declared == on_disk | {"experiments.conf"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q", "-w", str(out)],
                   cwd=ROOT, check=True, capture_output=True)
    (whl,) = out.glob("*.whl")
    return whl


def test_wheel_carries_configs_and_tuned_table(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == TOP
    yamls = {n for n in names if n.endswith(".yaml")}
    assert {f"experiments/conf/{p.relative_to(ROOT / 'conf')}" for p in (ROOT / "conf").rglob("*.yaml")} == yamls
    assert {"kernels/tuned_configs.json", "kernels/cuda_tuned.json", "kernels/gated_gemv.cu"} <= set(names)


def test_installed_copy_finds_its_configs_and_tuned_table(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    code = ("import experiments.harness.schema as s, kernels.gated_gemv as g; "
            "print(s.CONF_DIR); print(g.load_tuned()); "
            "from experiments.harness.cli import preflight; from experiments.harness.pipeline import check_config; "
            "print(preflight(['model=tiny-random', 'method=wina', 'sparsity=0.5'], check_config)); "
            "print(preflight(['-m', 'hydra/launcher=slurm', '+experiment=paper_grid_cpu', 'model=tiny-random', "
            "'method=wina', 'sparsity=0.5'], check_config))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, text=True, capture_output=True,
                          env={**os.environ, "PYTHONPATH": str(target), "WINA_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr[-2000:]
    conf, tuned, verdict, preset_verdict = proc.stdout.split("\n")[:4]
    assert Path(conf) == target / "experiments" / "conf" and int(tuned) > 0 and verdict == "None"
    assert preset_verdict == "None"  # a launcher config and an experiment preset from the installed conf/
