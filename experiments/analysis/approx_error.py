"""Per-layer, per-projection relative output error ``||W x - W x_masked|| / ||W x||`` of each method.

    python -m experiments.analysis.approx_error sparsity=0.5 methods=[wina,teal] out=results/approx_error

``inputs=dense`` (default) feeds every layer the dense model's activations (each gated linear measures its
error but passes the dense output on): the single-layer quantity WINA's theorem bounds. ``inputs=sparse``
lets errors propagate as in evaluation. Calibration text only (LAMBADA, never evaluated). Writes a long CSV,
a markdown summary and a per-layer plot.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import hydra
import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from experiments.harness.cli import fail, preflight
from experiments.harness.errors import USER_ERRORS, HarnessError
from experiments.harness.schema import CONF_DIR
from experiments.harness.tables import markdown

INPUT_MODES = ("dense", "sparse")


def _method_cfg(name: str, cfg: DictConfig) -> tuple:
    """The method's config under this run's token policy; calibrated thresholds come from the same activations the
    error is measured on (``inputs``), so that every method skips the target fraction in this measurement."""
    import dataclasses

    from experiments.harness.sparsity import compose_method

    overrides = [f"++method.{o}" for o in cfg.method_overrides] + [f"tokens={cfg.tokens.name}"]
    mcfg, _, label = compose_method(name, cfg.sparsity, overrides)
    return label, dataclasses.replace(mcfg, thresholds_from=cfg.inputs)


class ErrorMeter:
    """Forward hooks on gated linears accumulating ``||W x - y||^2`` and ``||W x||^2``."""

    def __init__(self, sparsified, pass_dense: bool) -> None:
        self.num: dict[str, float] = {}
        self.den: dict[str, float] = {}
        self.hooks = [sparsified.modules[t.key].register_forward_hook(self._hook(t.key, pass_dense))
                      for t in sparsified.targets]

    def _hook(self, key: str, pass_dense: bool):
        def hook(module, args, output):
            full = F.linear(args[0], module.weight, module.bias)
            self.num[key] = self.num.get(key, 0.0) + float((full - output).float().pow(2).sum())
            self.den[key] = self.den.get(key, 0.0) + float(full.float().pow(2).sum())
            return full if pass_dense else output
        return hook

    def remove(self) -> None:
        for h in self.hooks:
            h.remove()

    def errors(self) -> dict[str, float]:
        return {k: (self.num[k] / self.den[k]) ** 0.5 for k in self.num}


@torch.no_grad()
def measure(cfg: DictConfig):
    import pandas as pd

    from experiments.harness.assets import default_cache_dir
    from experiments.harness.models import load_model
    from experiments.harness.sparsity import calibration_config, calibration_tokens
    from experiments.harness.task_data import ensure_data
    from wina import sparsify_
    from wina.calibrate import run_batches

    check(cfg)
    cache = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir()
    methods = [_method_cfg(m, cfg) for m in cfg.methods]
    data_dir, _ = ensure_data(cfg.data, cache, cfg.find_links)
    base = load_model(cfg.model, cfg.device, cfg.dtype, cache, cfg.find_links)
    calib = calibration_config(cfg)
    tokens = calibration_tokens(base.tokenizer, data_dir, calib)
    n_eval = min(cfg.eval_samples, tokens.shape[0])
    rows = []
    for label, mcfg in methods:
        model = copy.deepcopy(base.model)
        sp = sparsify_(model, mcfg, tokens, cache_dir=cache, calibration=calib)
        meter = ErrorMeter(sp, pass_dense=cfg.inputs == "dense")
        sp.reset_counts()
        run_batches(model, tokens[-n_eval:], batch_size=1, desc=f"approx error: {label}")
        meter.remove()
        for t in sp.targets:
            rows.append({"method": label, "layer": t.layer, "kind": t.kind, "level": sp.levels[t.key],
                         "measured": sp.modules[t.key].measured, "rel_error": meter.errors()[t.key]})
        del model
    return pd.DataFrame(rows)


def write_outputs(df, cfg: DictConfig, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    tag = "".join(f"_{o.replace('=', '-')}" for o in cfg.method_overrides)
    stem = f"{cfg.model.name}_s{cfg.sparsity}_{cfg.inputs}{tag}"
    df.to_csv(out / f"{stem}.csv", index=False)
    by_kind = df.pivot_table(index="kind", columns="method", values="rel_error", aggfunc="mean")
    by_kind = by_kind.reindex([k for k in ("q", "k", "v", "o", "gate", "up", "down") if k in by_kind.index])
    by_layer = df.pivot_table(index="layer", columns="method", values="rel_error", aggfunc="mean")
    measured = df.pivot_table(index="kind", columns="method", values="measured", aggfunc="mean").reindex(by_kind.index)
    wins = {m: int((by_layer[m] == by_layer.min(axis=1)).sum()) for m in by_layer.columns}
    lines = [f"# Relative output error ||Wx - W x_masked|| / ||Wx||: {cfg.model.name}, sparsity {cfg.sparsity}, "
             f"{cfg.inputs} inputs", "", f"Command: `{' '.join(['python -m experiments.analysis.approx_error', *sys.argv[1:]])}`",
             "", "Mean over layers, per projection:", "", markdown(by_kind), "",
             "Sparsity measured in this run (mean over layers), per projection:", "", markdown(measured, ".3f"), "",
             "Mean over projections, per layer:", "", markdown(by_layer), "",
             f"Layers where each method has the lowest mean error: {wins}", ""]
    (out / f"{stem}.md").write_text("\n".join(lines))
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for m in by_layer.columns:
        axes[0].plot(by_layer.index, by_layer[m], marker="o", ms=3, label=m)
    axes[0].set(xlabel="layer", ylabel="relative output error (mean over projections)", yscale="log")
    by_kind.plot.bar(ax=axes[1], rot=0)
    axes[1].set(xlabel="projection", ylabel="relative output error (mean over layers)")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"{cfg.model.name}, sparsity {cfg.sparsity}, {cfg.inputs} inputs")
    fig.tight_layout()
    for ext in ("png", "pdf"):
        fig.savefig(out / f"{stem}.{ext}", dpi=150)
    print(by_kind.round(4).to_string())
    print(f"written: {out / stem}.{{csv,md,png,pdf}}")


def check(cfg: DictConfig, probe_hub: bool = False) -> None:
    """What this command accepts (the methods must be options of the method group)."""
    from experiments.harness.cli import group_choices

    if cfg.inputs not in INPUT_MODES:
        raise HarnessError(f"inputs={cfg.inputs!r} is not known; accepted: {', '.join(INPUT_MODES)}")
    known = group_choices(CONF_DIR)["method"]
    for m in cfg.methods:
        if m not in known or m == "dense":
            raise HarnessError(f"methods: {m!r} is not a sparsity method; accepted: "
                               f"{', '.join(k for k in known if k != 'dense')}")
    if not 0.0 < cfg.sparsity < 1.0:
        raise HarnessError(f"sparsity={cfg.sparsity!r} is outside (0, 1)")
    if cfg.eval_samples < 1:
        raise HarnessError(f"eval_samples={cfg.eval_samples!r} must be a positive integer")


def main() -> None:
    if (msg := preflight(sys.argv[1:], check, default_config="approx_error")) is not None:
        fail(msg)

    @hydra.main(config_path=str(CONF_DIR), config_name="approx_error", version_base="1.3")
    def run(cfg: DictConfig) -> None:
        try:
            write_outputs(measure(cfg), cfg, Path(cfg.out))
        except USER_ERRORS as exc:
            fail(str(exc))

    run()


if __name__ == "__main__":
    main()
