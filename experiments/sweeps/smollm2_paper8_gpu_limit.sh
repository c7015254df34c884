#!/usr/bin/env bash
# The paper setting (greedy allocation for WINA/TEAL) for all methods on SmolLM2-135M at 25/50/65% on paper8,
# one GPU, limit=300 documents per task and greedy_step=0.1 so that the whole sweep fits one short device call.
# Jobs run in parallel processes (Hydra's joblib launcher). Usage: smollm2_paper8_gpu_limit.sh SWEEP_DIR
set -u
SWEEP=${1:?sweep dir}
export OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
python3 run.py tasks=paper8 limit=300 batch_size=16 hydra.run.dir="$SWEEP/dense" &
python3 run.py --multirun hydra/launcher=joblib hydra.launcher.n_jobs=15 \
    method=wina,teal,teal-transform,rsparse,cats sparsity=0.25,0.5,0.65 ++method.greedy_step=0.1 \
    tasks=paper8 limit=300 batch_size=16 hydra.sweep.dir="$SWEEP/methods"
wait
