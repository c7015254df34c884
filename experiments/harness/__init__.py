"""The harness core: assets, models, task data, lm-eval tasks, evaluation, the run record, the Hydra entry."""
