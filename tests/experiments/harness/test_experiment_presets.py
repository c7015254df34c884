"""Experiment presets (``+experiment=<name>``, conf/experiment/): each composes, and the preflight expands the grid
a preset defines in ``hydra.sweeper.params`` as Hydra's BasicSweeper does (a command-line sweep of the same key
replaces the preset's), so a bad value inside a preset stops the sweep before its first job."""

import functools
import itertools

import pytest

from experiments.harness.cli import preflight
from experiments.harness.pipeline import check_config
from experiments.harness.schema import CONF_DIR, compose_config, unknown_keys

PRESETS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
PAPER_METHODS = ["dense", "wina", "wina-notransform", "wina-threshold", "teal-topk", "teal", "teal-transform",
                 "rsparse", "cats"]


@functools.cache
def preflight_jobs(preset, *overrides):
    """(the preflight's verdict on ``--multirun +experiment=<preset> ...``, the config of every job it checked)."""
    jobs = []
    verdict = preflight(["--multirun", f"+experiment={preset}", "model=tiny-random", *overrides], check_config,
                        composed=jobs)
    return verdict, jobs


def grid(jobs):
    return sorted((cfg.method.label, cfg.sparsity) for cfg in jobs)


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_composes(preset):
    cfg = compose_config([f"+experiment={preset}"])
    assert unknown_keys(cfg) == [] and cfg.tasks.name == "paper8"


@pytest.mark.parametrize("preset", PRESETS)
def test_every_job_of_a_preset_validates(preset):
    verdict, jobs = preflight_jobs(preset)
    assert verdict is None and jobs


def test_paper_grid_is_every_method_at_every_sparsity_on_full_sets():
    verdict, jobs = preflight_jobs("paper_grid")
    assert verdict is None
    assert grid(jobs) == sorted(itertools.product(PAPER_METHODS, [0.25, 0.4, 0.5, 0.65]))
    assert {cfg.tasks.name for cfg in jobs} == {"paper8"} and {cfg.limit for cfg in jobs} == {None}
    own = {m: compose_config([f"method={m}"]).method for m in PAPER_METHODS}  # allocation as each YAML says
    assert all(cfg.method == own[cfg.method.label] for cfg in jobs)


def test_cpu_grid_is_uniform_and_capped():
    verdict, jobs = preflight_jobs("paper_grid_cpu")
    assert verdict is None
    assert grid(jobs) == sorted(itertools.product(["dense", "wina", "teal", "rsparse", "cats"], [0.25, 0.5, 0.65]))
    assert {cfg.limit for cfg in jobs} == {50} and {cfg.method.allocation for cfg in jobs} == {"uniform"}


def test_the_command_line_replaces_a_presets_sweep():
    verdict, jobs = preflight_jobs("paper_grid", "method=wina,teal", "sparsity=0.5")
    assert verdict is None and grid(jobs) == [("teal", 0.5), ("wina", 0.5)]


@pytest.mark.parametrize("bad,needle", [
    ("hydra.sweeper.params.sparsity='0.25,1.5'", "sparsity=1.5 is outside [0, 1)"),
    ("hydra.sweeper.params.method='wina,magic'", "Could not find 'method/magic'; accepted: cats, dense,"),
])
def test_a_bad_value_in_a_presets_sweep_stops_it(bad, needle):
    """A preset's grid edited on the command line stands for a preset file holding the bad value."""
    verdict, _ = preflight_jobs("paper_grid_cpu", bad)
    assert verdict is not None and needle in verdict, verdict


def test_an_unknown_preset_names_the_presets():
    verdict, _ = preflight_jobs("paper_gird")
    assert verdict.endswith(f"accepted: {', '.join(PRESETS)}"), verdict
