"""Hydra launchers for ``--multirun``: every launcher config composes (the plugins' own and ours in
conf/hydra/launcher/, where the plugin is installed), and two tiny jobs run through joblib and through submitit's
local executor, each writing its record."""

import importlib.util
import json

import pytest
from hydra import compose, initialize_config_dir

from experiments.harness.schema import CONF_DIR, register_schemas
from tests.experiments.harness.runner import run

# hydra/launcher=<option> -> the plugin package it needs
PLUGIN = {"joblib": "hydra_joblib_launcher", "joblib_cpu": "hydra_joblib_launcher",
          "submitit_local": "hydra_submitit_launcher", "submitit_slurm": "hydra_submitit_launcher",
          "slurm": "hydra_submitit_launcher", "ray": "hydra_ray_launcher", "ray_gpus": "hydra_ray_launcher"}
TINY_JOBS = ["model=tiny-random", "sparsity=0.5", "tasks.names=[piqa]", "limit=2"]


def needs_plugin(option: str) -> None:
    if importlib.util.find_spec(f"hydra_plugins.{PLUGIN[option]}") is None:
        pytest.skip(f"{PLUGIN[option]} is not installed (pip install -e '.[launchers]')")


def launcher_config(option: str):
    needs_plugin(option)
    register_schemas()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", [f"hydra/launcher={option}"], return_hydra_config=True).hydra.launcher


def test_every_launcher_file_is_covered():
    assert {p.stem for p in (CONF_DIR / "hydra" / "launcher").glob("*.yaml")} <= set(PLUGIN)


@pytest.mark.parametrize("option", sorted(PLUGIN))
def test_launcher_config_composes(option):
    assert launcher_config(option)._target_.startswith(f"hydra_plugins.{PLUGIN[option]}.")


def test_our_launchers_extend_the_plugins():
    slurm = launcher_config("slurm")
    assert slurm._target_.endswith(".SlurmLauncher") and slurm.gpus_per_node == 1 and slurm.tasks_per_node == 1
    assert slurm.cpus_per_task and slurm.mem_gb and slurm.timeout_min > 60
    assert launcher_config("joblib_cpu").n_jobs == 2


def test_ray_gpus_gives_each_job_one_gpu():
    assert launcher_config("ray_gpus").ray.remote.num_gpus == 1


def run_sweep(tmp_path, args) -> list[dict]:
    """``python run.py --multirun ...`` into the test's folder; the records its jobs wrote to the store."""
    proc, _ = run(["--multirun", *args, *TINY_JOBS, f"hydra.sweep.dir={tmp_path / 'sweep'}",
                   f"store={tmp_path / 'store'}"], tmp_path, hydra_dir=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(p.read_text()) for p in sorted((tmp_path / "store").rglob("record.json"))]


@pytest.mark.real  # the tasks read the real benchmark data
def test_joblib_runs_a_presets_sweep(tmp_path):
    """Two jobs at once through joblib; the preset's own sweep (uniform allocation) applies and the command line's
    method list replaces the preset's."""
    needs_plugin("joblib_cpu")
    records = run_sweep(tmp_path, ["hydra/launcher=joblib_cpu", "+experiment=paper_grid_cpu", "method=wina,teal-topk"])
    assert sorted(r["config"]["method"]["label"] for r in records) == ["teal-topk", "wina"]
    for r in records:
        assert r["status"] == "complete" and r["config"]["method"]["allocation"] == "uniform"


@pytest.mark.real
def test_submitit_local_runs_two_jobs(tmp_path):
    needs_plugin("submitit_local")
    records = run_sweep(tmp_path, ["hydra/launcher=submitit_local", "method=wina,teal-topk",
                                   "++method.allocation=uniform"])
    assert sorted(r["config"]["method"]["label"] for r in records) == ["teal-topk", "wina"]
    assert all(r["status"] == "complete" for r in records)
