"""Glue between the Hydra config and ``wina.sparsify_``: method config, calibration tokens, measurements."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from experiments.errors import HarnessError
from wina import CalibrationConfig, NotReachable, build_config, sparsify_
from wina.flops import flops_report

_NOT_OPTIONS = ("name", "label")


def method_config(cfg: DictConfig):
    """The frozen method config from ``cfg.method`` + ``cfg.sparsity``; None for dense."""
    fields = {k: v for k, v in OmegaConf.to_container(cfg.method, resolve=True).items() if k not in _NOT_OPTIONS}
    if cfg.method.name == "dense":
        if fields:
            raise HarnessError(f"method=dense takes no options (got {sorted(fields)[0]!r})")
        if float(cfg.sparsity) != 0.0:
            raise HarnessError(f"sparsity={cfg.sparsity} needs a sparsity method; method=dense is the dense model")
        return None
    return build_config(cfg.method.name, {**fields, "sparsity": float(cfg.sparsity)})


def calibration_config(cfg: DictConfig) -> CalibrationConfig:
    return CalibrationConfig(**OmegaConf.to_container(cfg.calibration, resolve=True))


def calibration_tokens(tokenizer, data_dir: Path, calib: CalibrationConfig):
    from experiments.task_data import read_jsonl
    from wina.calibrate import calibration_batches

    texts = [d["text"] for d in read_jsonl(Path(data_dir) / calib.source / "test.jsonl")]
    return calibration_batches(texts, tokenizer, calib)


@dataclass
class AppliedSparsity:
    sparsified: object = None
    not_reachable: str | None = None

    def measure(self, model, context_len: int) -> dict:
        """Sparsity measured during the evaluation and the FLOPs it implies, for the record."""
        out = {"flops": flops_report(model, self.sparsified, context_len)}
        if self.sparsified is not None:
            out["sparsity"] = {**self.sparsified.measured(model), "levels": self.sparsified.levels,
                               "facts": self.sparsified.facts}
        return out


def apply_method(loaded, method_cfg, cfg: DictConfig, data_dir: Path | None, cache_dir: Path) -> AppliedSparsity:
    if method_cfg is None:
        return AppliedSparsity()
    calib = calibration_config(cfg)
    tokens = calibration_tokens(loaded.tokenizer, data_dir, calib)
    try:
        sp = sparsify_(loaded.model, method_cfg, tokens, cache_dir=cache_dir, calibration=calib)
    except NotReachable as exc:
        return AppliedSparsity(not_reachable=str(exc))
    sp.reset_counts()
    return AppliedSparsity(sparsified=sp)
