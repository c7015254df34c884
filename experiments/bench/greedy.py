"""Greedy allocation's search on SmolLM2-135M: the whole-layer replay it used to run for every trial
(``WholeLayerReplay``, the reference) against ``wina.allocate.LayerReplay``, seconds per layer and whether the
curves agree; then (``--full``) the whole search as ``sparsify_`` runs it; then (``--fewer-samples N``) the
search on N calibration sequences beside the default's, timed, its allocations judged on the default's sequences.

    python -m experiments.bench.greedy [--methods teal,wina] [--layers 0,15] [--full] [--fewer-samples 4]

Methods: ``teal`` (``mask=topk``, sparsity 0.5), ``wina`` (sparsity 0.65) and ``teal-threshold`` (TEAL's own
thresholds), all ``allocation=greedy`` with the default step, samples and greedy_max; calibration: the harness's
LAMBADA tokens (16 x 256), float32. Each method's search is driven through ``sparsify_`` (its own preparation,
gates and captured layer inputs); ``--layers`` runs both replays on those layers only, inside it, and prints a row
per layer: seconds of each, whether the two curves are the same, and the largest relative difference between the
errors the two replays gave the same trials.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from wina import allocate
from wina.calibrate import first_output

CONFIGS = {  # name (the method, and a variant after "-") -> its config fields
    "teal": dict(sparsity=0.5, allocation="greedy", mask="topk"),
    "wina": dict(sparsity=0.65),
    "teal-threshold": dict(sparsity=0.5),  # TEAL's own calibrated thresholds: cheap masks, no per-token top-k
}


class WholeLayerReplay:
    """The greedy search's error as it was: for each trial, the whole decoder layer (its gated projections
    installed, set to the trial's levels) on every position, one trial at a time; the relative error of the tail
    positions against all levels 0. The reference ``LayerReplay`` is tested against."""

    def __init__(self, layer, gated: dict, x: torch.Tensor, kwargs: dict) -> None:
        self.layer, self.gated, self.x, self.kwargs = layer, gated, x, kwargs
        self.start = int(x.shape[-2] * (1 - allocate.TAIL))
        self.dense = self._output({k: 0.0 for k in gated})
        self.dense_energy = float(self.dense.float().pow(2).sum())

    @torch.no_grad()
    def _output(self, levels: dict[str, float]) -> torch.Tensor:
        for kind, module in self.gated.items():
            module.gate.set_level(levels[kind])
        return first_output(self.layer(self.x, **self.kwargs))[:, self.start:]

    def errors(self, trials: list[dict[str, float]]) -> list[float]:
        return [float((self._output(t) - self.dense).float().pow(2).sum()) / max(self.dense_energy, 1e-30)
                for t in trials]


class Recorder:
    """Wraps a replay's ``errors``: keeps every call's trials and errors."""

    def __init__(self, errors_of) -> None:
        self.errors_of, self.calls = errors_of, []

    def __call__(self, trials):
        errors = self.errors_of(trials)
        self.calls.append((trials, errors))
        return errors


def largest_relative_difference(a: Recorder, b: Recorder) -> float:
    """Between the errors two searches got for the same trials, up to where their paths part (if they do)."""
    worst = 0.0
    for (trials_a, errors_a), (trials_b, errors_b) in zip(a.calls, b.calls):
        if trials_a != trials_b:
            break
        for ea, eb in zip(errors_a, errors_b):
            worst = max(worst, abs(ea - eb) / max(abs(ea), 1e-12))
    return worst


class _Timed(Exception):
    """Ends ``sparsify_`` once the layers asked for are timed (it restores the model)."""


def _timing_search(layers_to_time: list[int], rows: list[dict]):
    """A stand-in for ``allocate.greedy_curves``: both replays on ``layers_to_time``, one row each, then stop."""

    def greedy_curves(layers, gated_per_layer, inputs, kwargs, params, step, max_sparsity, **_):
        for i in layers_to_time:
            row, curves = {"layer": i}, []
            for name, replay in (("whole_layer", WholeLayerReplay), ("replay", allocate.LayerReplay)):
                _sync(layers[i])
                start, start_cpu = time.perf_counter(), time.process_time()
                recorder = Recorder(replay(layers[i], gated_per_layer[i], inputs[i], kwargs[i]).errors)
                curves.append((allocate.greedy_curve(recorder, params, step, max_sparsity), recorder))
                _sync(layers[i])
                row[f"{name}_s"], row[f"{name}_cpu_s"] = time.perf_counter() - start, time.process_time() - start_cpu
            (old, old_calls), (new, new_calls) = curves
            row.update(steps=len(old) - 1, same_curve=old == new,
                       max_rel_error_diff=largest_relative_difference(old_calls, new_calls))
            rows.append(row)
            print(row, flush=True)
        raise _Timed

    return greedy_curves


def _inside_search(model, tokens: torch.Tensor, config, stand_in) -> None:
    """``sparsify_`` on a copy of ``model`` with ``stand_in`` as ``allocate.greedy_curves`` (called with its arguments:
    the layers, their gated projections and captured inputs; it ends the run by raising ``_Timed``)."""
    from wina import sparsify_

    search, allocate.greedy_curves = allocate.greedy_curves, stand_in
    try:
        sparsify_(copy.deepcopy(model), config, tokens)
    except _Timed:
        pass
    finally:
        allocate.greedy_curves = search


def compare_layers(model, tokens: torch.Tensor, config, layers: list[int]) -> list[dict]:
    """Both replays' searches on ``layers`` of ``model`` (a copy; ``config``'s preparation applied): one row each."""
    rows: list[dict] = []
    _inside_search(model, tokens, config, _timing_search(layers, rows))
    return rows


def time_search(model, tokens: torch.Tensor, config, cache_dir=None) -> float:
    """Seconds ``sparsify_`` takes on a copy of ``model``, the whole greedy search included (``cache_dir``: where it
    keeps the calibration; none by default)."""
    from wina import sparsify_

    model = copy.deepcopy(model)
    _sync(model)
    start = time.perf_counter()
    sparsify_(model, config, tokens, cache_dir=cache_dir)
    _sync(model)
    return time.perf_counter() - start


def curves_of(model, tokens: torch.Tensor, config) -> tuple[list, float]:
    """The greedy curves ``sparsify_`` makes for ``config`` on a copy of ``model`` (a fresh cache dir), and seconds."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="wina-bench-greedy-") as d:
        seconds = time_search(model, tokens, config, cache_dir=Path(d))
        (file,) = (Path(d) / "calibration").glob("*.pt")
        return torch.load(file, weights_only=True)["curves"], seconds


def fewer_samples(model, tokens: torch.Tensor, config, samples: int, targets=(0.25, 0.4, 0.5, 0.65)) -> list[str]:
    """The search replaying ``samples`` calibration sequences beside ``config``'s own (``greedy_samples``): the time
    of each, and at each target how good the fewer-sample allocation is where it counts, on ``config``'s sequences:
    each layer's error under it over the error under ``config``'s own allocation, and the largest level difference."""
    import dataclasses

    from wina.targets import block_params

    params = block_params(model)
    reference, ref_s = curves_of(model, tokens, config)
    fewer, fewer_s = curves_of(model, tokens, dataclasses.replace(config, greedy_samples=samples))
    lines = [f"greedy_samples={config.greedy_samples}: {ref_s:.1f} s; greedy_samples={samples}: {fewer_s:.1f} s"]
    rows = []

    def judge(layers, gated, inputs, kwargs, *_, **__):
        for i in range(len(layers)):
            trials = [allocate.pick(c[i], t, params) for t in targets for c in (reference, fewer)]
            errors = allocate.LayerReplay(layers[i], gated[i], inputs[i], kwargs[i]).errors(trials)
            for j, t in enumerate(targets):
                ref, few = trials[2 * j], trials[2 * j + 1]
                rows.append((t, errors[2 * j + 1] / max(errors[2 * j], 1e-30), max(abs(ref[k] - few[k]) for k in ref)))
        raise _Timed

    _inside_search(model, tokens, config, judge)
    for t in targets:
        ratios, diffs = [r for tt, r, _ in rows if tt == t], [d for tt, _, d in rows if tt == t]
        lines.append(f"target {t:g}: error of the {samples}-sample allocation / the {config.greedy_samples}-sample "
                     f"one's, per layer: mean {sum(ratios) / len(ratios):.4f}, min {min(ratios):.4f}, max "
                     f"{max(ratios):.4f}; the same levels in {sum(d < 1e-9 for d in diffs)} of {len(diffs)} layers, "
                     f"largest level difference {max(diffs):.3f}")
    return lines


def _sync(model) -> None:
    if next(model.parameters()).is_cuda:
        torch.cuda.synchronize()


def _load(device: str):
    from experiments.harness.assets import default_cache_dir
    from experiments.harness.models import load_model
    from experiments.harness.schema import load_option
    from experiments.harness.sparsity import calibration_tokens
    from experiments.harness.task_data import ensure_data
    from wina.calibrate import CalibrationConfig

    cache_dir = default_cache_dir()
    loaded = load_model(load_option("model", "smollm2-135m"), device=device, dtype="float32", cache_dir=cache_dir)
    data_dir = ensure_data(load_option("data", "local"), cache_dir)[0]
    return loaded.model, calibration_tokens(loaded.tokenizer, data_dir, CalibrationConfig())


def run(model, tokens: torch.Tensor, methods: list[str], layers: list[int], full: bool,
        fewer: int | None = None) -> None:
    import baselines.teal  # noqa: F401  (registers the method)
    from wina import build_config
    from wina.targets import decoder_layers

    n_layers = len(decoder_layers(model))
    print(f"device={next(model.parameters()).device} threads={torch.get_num_threads()}", flush=True)
    for name in methods:
        config = build_config(name.split("-")[0], CONFIGS[name])
        if layers:
            rows = compare_layers(model, tokens, config, layers)
            for key in ("whole_layer_s", "replay_s", "whole_layer_cpu_s", "replay_cpu_s"):
                mean = sum(r[key] for r in rows) / len(rows)
                print(f"{name}: {key} {mean:.2f} per layer, x{n_layers} layers = {mean * n_layers / 60:.2f} min")
            print(f"{name}: the same curve on {sum(r['same_curve'] for r in rows)} of {len(rows)} layers; largest "
                  f"relative error difference {max(r['max_rel_error_diff'] for r in rows):.2e}", flush=True)
        if full:
            print(f"{name}: sparsify_ with the whole search (curves up to sparsity {config.sparsity:g}): "
                  f"{time_search(model, tokens, config):.1f} s", flush=True)
        if fewer:
            for line in fewer_samples(model, tokens, config, fewer):
                print(f"{name}: {line}", flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", default="teal,wina", help=f"of {', '.join(CONFIGS)}")
    ap.add_argument("--layers", default="0", help="layers to time both replays on (empty: none)")
    ap.add_argument("--full", action="store_true", help="also time the whole search through sparsify_")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--fewer-samples", type=int, default=None,
                    help="also run the search on this many calibration sequences and judge its allocations")
    args = ap.parse_args(argv)
    model, tokens = _load(args.device)
    run(model, tokens, args.methods.split(","), [int(i) for i in args.layers.split(",") if i], args.full,
        args.fewer_samples)


if __name__ == "__main__":
    main()
