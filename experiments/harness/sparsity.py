"""Glue between the Hydra config and ``wina.sparsify_``: method config, calibration tokens, measurements."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from experiments.harness.methods import load_methods
from wina import CalibrationConfig, NotReachable, Sparsified, build_config, sparsify_
from wina.flops import flops_report

_NOT_OPTIONS = ("name", "label")
load_methods()


def method_config(cfg: DictConfig):
    """The frozen method config from ``cfg.method`` + ``cfg.sparsity``; None for dense."""
    fields = {k: v for k, v in OmegaConf.to_container(cfg.method, resolve=True).items() if k not in _NOT_OPTIONS}
    if cfg.method.name == "dense":
        return None  # at any sparsity: a dense job maps to the dense record (pipeline.run_experiment)
    return build_config(cfg.method.name, {**fields, "sparsity": float(cfg.sparsity),
                                          "dense_prefix": float(cfg.tokens.dense_prefix),
                                          "dense_prefix_rounding": cfg.tokens.rounding})


def compose_method(method: str, sparsity: float, overrides: list[str] = ()):
    """``(method config, calibration config, label)`` exactly as ``python run.py method=<method> sparsity=<s>
    <overrides>`` would build them (for tools that apply a method outside a run: benchmarks, error studies)."""
    from experiments.harness.schema import compose_config

    cfg = compose_config([f"method={method}", f"sparsity={sparsity}", *overrides])
    return method_config(cfg), calibration_config(cfg), cfg.method.label


def calibration_config(cfg: DictConfig) -> CalibrationConfig:
    return CalibrationConfig(**OmegaConf.to_container(cfg.calibration, resolve=True))


def calibration_tokens(tokenizer, data_dir: Path, calib: CalibrationConfig):
    from experiments.harness.task_data import read_jsonl
    from wina.calibrate import calibration_batches

    texts = [d["text"] for d in read_jsonl(Path(data_dir) / calib.source / "test.jsonl")]
    return calibration_batches(texts, tokenizer, calib)


@dataclass
class AppliedSparsity:
    sparsified: Sparsified | None = None
    not_reachable: str | None = None

    def measure(self, model, context_len: int):
        """``(MeasuredSparsity or None for dense, FlopsReport)`` of what ran since ``sparsify_``."""
        measured = None if self.sparsified is None else self.sparsified.measured(model)
        return measured, flops_report(model, self.sparsified, context_len)

    def restore(self) -> None:
        """Give the model back dense (the next job of a sweep evaluates the same loaded model)."""
        if self.sparsified is not None and self.sparsified.dense is not None:
            self.sparsified.restore_()


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
