"""Evaluate a (sparsified) causal LM with lm-eval:  python run.py method=wina sparsity=0.65

Every key, its type and default: experiments/harness/schema.py; ``--multirun`` sweeps are checked in full
before the first job starts (experiments/harness/cli.py)."""

from experiments.harness.cli import run_main

if __name__ == "__main__":
    run_main()
