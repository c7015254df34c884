#!/usr/bin/env bash
# All methods on SmolLM2-135M at 25/50/65% on the paper8 tasks, full sets, one GPU, one job at a time.
# Calibration (greedy curves, activation samples) is cached per method, so each method calibrates once.
# Measured on an H100, one job at a time: dense paper8 131 s; TEAL 363 s at 50% (greedy calibration included)
# and 247 s at 65% (calibration cached); R-Sparse 316 s at 50%. The 15 runs below take roughly 70-80 minutes.
# Parallel jobs on ONE GPU do not help: CUDA time-slices processes, and 9-16 concurrent jobs ran at 30-240
# requests/s each and ran out of GPU memory at batch 64. On a node with several GPUs use Hydra's joblib (or
# submitit) launcher with one job per GPU.
# Usage: bash experiments/sweeps/smollm2_paper8.sh SWEEP_DIR
set -u
SWEEP=${1:?sweep dir}
python3 run.py --multirun method=wina,teal,teal-transform,rsparse,cats sparsity=0.25,0.5,0.65 \
    tasks=paper8 limit=null batch_size=64 hydra.sweep.dir="$SWEEP/paper8"
