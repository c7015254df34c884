#!/usr/bin/env bash
# All methods on SmolLM2-135M at 25/50/65% on the paper8 tasks, full sets, one GPU.
# lm-eval's per-request Python work, not the GPU, bounds a 135M model, so the sweep's jobs run in parallel
# processes sharing the GPU through Hydra's joblib launcher. Calibration is cached per method: a first pass at one
# sparsity fills the cache, so the 15 jobs of the sweep do not each repeat the greedy search.
# Usage: bash experiments/sweeps/smollm2_paper8.sh SWEEP_DIR [N_JOBS]
set -u
SWEEP=${1:?sweep dir}; JOBS=${2:-15}
export OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
python3 run.py --multirun hydra/launcher=joblib hydra.launcher.n_jobs=3 method=wina,teal,teal-transform \
    sparsity=0.25 limit=1 tasks.names=[piqa] hydra.sweep.dir="$SWEEP/calibration-warmup"
python3 run.py --multirun hydra/launcher=joblib hydra.launcher.n_jobs="$JOBS" \
    method=wina,teal,teal-transform,rsparse,cats sparsity=0.25,0.5,0.65 tasks=paper8 limit=null batch_size=64 \
    hydra.sweep.dir="$SWEEP/paper8"
