"""Where a sweep's time goes: the seconds of each stage of the first and a later job in one process, and the
gated vs dense log-likelihood loop.

    python -m experiments.bench.sweep_stages [--method wina] [--sparsity 0.65] [run.py overrides ...]
    python -m experiments.bench.sweep_stages --store STORE   # the same stages, read from a sweep's records

Runs, in one process as a ``--multirun`` with Hydra's basic launcher does (``run_experiment`` on one
``Session``): dense (the first job: loads the model and the tasks, builds lm-eval's requests, tokenizes), dense
again (a later job: none of that again), then the method (calibration, and the gated loop). Each into a fresh
temporary store with ``force=true``, so nothing is skipped. Prints the per-stage table and the ratios.
"""

from __future__ import annotations

import argparse
import tempfile

from experiments.harness.tables import markdown_table

STAGES = ("data", "load_model", "calibrate+sparsify", "lm_eval_load_tasks", "lm_eval_build_requests",
          "lm_tokenize+loglikelihood", "lm_loglikelihood_loop", "evaluate")


def run_jobs(overrides: list[str], method: str, sparsity: float) -> list[tuple[str, dict, float]]:
    from experiments.harness.pipeline import run_experiment
    from experiments.harness.record import RunRecord
    from experiments.harness.schema import compose_config

    out = []
    with tempfile.TemporaryDirectory(prefix="wina-bench-store-") as store:
        jobs = [("dense (first job)", ["method=dense"]), ("dense (later job)", ["method=dense"]),
                (f"{method} s={sparsity:g} (later job)", [f"method={method}", f"sparsity={sparsity}"])]
        for name, job in jobs:
            cfg = compose_config([*overrides, *job, f"store={store}", "force=true"])
            record = RunRecord.read(run_experiment(cfg))
            out.append((name, record.stage_seconds, record.wall_time_s))
    return out


def table(jobs: list[tuple[str, dict, float]]) -> str:
    rows = [(stage, *[s.get(stage, 0.0) for _, s, _ in jobs]) for stage in STAGES]
    for (name, s, _) in jobs:  # tokenization = the model call less its loop
        s["tokenize"] = s.get("lm_tokenize+loglikelihood", 0.0) - s.get("lm_loglikelihood_loop", 0.0)
    rows.insert(6, ("tokenize (derived)", *[round(s["tokenize"], 3) for _, s, _ in jobs]))
    rows.append(("whole job (wall)", *[w for _, _, w in jobs]))
    return markdown_table(("stage (s)", *[n for n, _, _ in jobs]), rows, ".2f")


def store_table(store: str) -> str:
    """Per record of a store, in the order the sweep made them: wall time, calibration, the log-likelihood loop and
    the rest of lm-eval's evaluation, the loop relative to the dense record's; then the totals."""
    from pathlib import Path

    from experiments.harness.record import RunRecord

    records = sorted((RunRecord.read(p) for p in Path(store).rglob("record.json")), key=lambda r: r.created)
    dense = next((r.stage_seconds.get("lm_loglikelihood_loop") for r in records if r.label == "dense"), None)
    rows, total = [], dict(wall=0.0, calibrate=0.0, loop=0.0)
    for r in records:
        s = r.stage_seconds
        loop, cal = s.get("lm_loglikelihood_loop", 0.0), s.get("calibrate+sparsify", 0.0)
        fixed = sum(s.get(k, 0.0) for k in ("load_model", "lm_eval_load_tasks", "lm_eval_build_requests"))
        rows.append((r.label, f"{r.config['sparsity']:g}", r.status, f"{r.wall_time_s:.1f}", f"{fixed:.1f}",
                     f"{cal:.1f}", f"{loop:.1f}",
                     f"{s.get('evaluate', 0.0) - s.get('lm_tokenize+loglikelihood', 0.0):.1f}",
                     f"{loop / dense:.2f}" if dense and loop else ""))
        total.update(wall=total["wall"] + r.wall_time_s, calibrate=total["calibrate"] + cal, loop=total["loop"] + loop)
    rows.append(("all", "", f"{len(records)} records", f"{total['wall']:.1f}", "", f"{total['calibrate']:.1f}",
                 f"{total['loop']:.1f}", "", ""))
    return markdown_table(("method", "sparsity", "status", "wall s", "load+tasks+build s", "calibrate s", "loop s",
                           "lm-eval post s", "loop / dense loop"), rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="wina")
    ap.add_argument("--sparsity", type=float, default=0.65)
    ap.add_argument("--store", help="print the stages of every record in this store (a sweep already run) instead")
    ap.add_argument("overrides", nargs="*", help="run.py overrides, e.g. tasks=paper8 limit=null batch_size=64")
    args = ap.parse_args(argv)
    if args.store:
        print(store_table(args.store))
        return
    jobs = run_jobs(args.overrides, args.method, args.sparsity)
    print(f"\nsweep stages: {' '.join(args.overrides)}; method={args.method} sparsity={args.sparsity}\n")
    print(table(jobs))
    (_, first, w_first), (_, later, w_later), (_, gated, _) = jobs
    loop = later.get("lm_loglikelihood_loop", 0.0)
    print(f"\nlater dense job / first dense job (wall): {w_later / w_first:.2f}")
    if loop:
        print(f"gated / dense log-likelihood loop: {gated.get('lm_loglikelihood_loop', 0.0) / loop:.2f}")


if __name__ == "__main__":
    main()
