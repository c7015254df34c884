#!/usr/bin/env bash
# All methods on SmolLM2-135M at 25/50/65% on paper8, CPU (2 cores): limit=50 documents per task and uniform
# allocation for every method (the greedy search takes ~30 min per method on 2 cores).
# Usage: bash experiments/sweeps/smollm2_paper8_cpu.sh SWEEP_DIR
set -u
SWEEP=${1:?sweep dir}
python3 run.py tasks=paper8 limit=50 batch_size=16 hydra.run.dir="$SWEEP/dense"
python3 run.py --multirun method=wina,teal,rsparse,cats sparsity=0.25,0.5,0.65 ++method.allocation=uniform \
    tasks=paper8 limit=50 batch_size=16 hydra.sweep.dir="$SWEEP/methods"
