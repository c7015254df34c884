"""Are two run records the same result? Compares every metric, the headline, the measured sparsity and levels,
and the FLOPs; prints each difference, exits 1 if there is one.

    python -m experiments.analysis.compare_records A/record.json B/record.json
"""

from __future__ import annotations

import argparse
import sys

from experiments.harness.record import RunRecord


def results_of(r: RunRecord) -> dict:
    out = {"average": r.average, "status": r.status}
    for name, t in r.tasks.items():
        out[f"{name}.headline"] = None if t is None else t.headline
        for k, v in ({} if t is None else t.metrics).items():
            out[f"{name}.{k}"] = v
    for k, v in (r.sparsity or {}).items():
        if k != "facts":
            out[f"sparsity.{k}"] = v
    for k, v in (r.flops or {}).items():
        out[f"flops.{k}"] = v
    return out


def differences(a: RunRecord, b: RunRecord) -> list[str]:
    ra, rb = results_of(a), results_of(b)
    return [f"{k}: {ra.get(k)!r} vs {rb.get(k)!r}" for k in sorted(set(ra) | set(rb)) if ra.get(k) != rb.get(k)]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a")
    ap.add_argument("b")
    args = ap.parse_args(argv)
    a, b = RunRecord.read(args.a), RunRecord.read(args.b)
    diff = differences(a, b)
    print(f"{len(results_of(a))} results compared; {len(diff)} differ")
    for line in diff:
        print("  " + line)
    sys.exit(1 if diff else 0)


if __name__ == "__main__":
    main()
