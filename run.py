"""Evaluate a (sparsified) causal LM with lm-eval:  python run.py method=wina sparsity=0.65"""

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from experiments.cli import bad_group_choice
from experiments.errors import EXIT_CODE, HarnessError

CONF_DIR = Path(__file__).resolve().parent / "conf"


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from experiments.pipeline import run_experiment

    try:
        run_experiment(cfg, Path(HydraConfig.get().runtime.output_dir))
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(EXIT_CODE)


if __name__ == "__main__":
    if (msg := bad_group_choice(sys.argv[1:], CONF_DIR)) is not None:
        print(f"error: {msg}", file=sys.stderr)
        sys.exit(EXIT_CODE)
    main()
