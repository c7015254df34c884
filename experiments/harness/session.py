"""What the jobs of a sweep share inside one process: the loaded model, the data folder, lm-eval's task objects
with their built requests, and the lm-eval model with its tokenization. Hydra's basic launcher runs a
``--multirun`` in one process, and joblib's workers run many jobs each: a later job pays none of these again.

Each job sparsifies the shared model in place and restores it (``Sparsified.restore_``) when it ends; a job that
fails before restoring drops the model, so the next one loads it afresh.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf


def _key(*parts) -> str:
    return json.dumps([OmegaConf.to_container(p, resolve=True) if isinstance(p, DictConfig) else p for p in parts],
                      sort_keys=True, default=str)


class Session:
    def __init__(self) -> None:
        self._model_key, self._loaded = None, None
        self._data: dict[str, tuple[Path, dict]] = {}
        self._tasks: dict[str, object] = {}
        self._lm_key, self._lm = None, None

    def data(self, data_cfg, cache_dir: Path, find_links):
        from experiments.harness.task_data import ensure_data

        key = _key(data_cfg, str(cache_dir))
        if key not in self._data:
            self._data[key] = ensure_data(data_cfg, cache_dir, find_links)
        return self._data[key]

    def model(self, cfg: DictConfig, cache_dir: Path):
        from experiments.harness.models import load_model

        key = _key(cfg.model, cfg.device, cfg.dtype, str(cache_dir))
        if key != self._model_key:
            self.drop_model()
            self._loaded = load_model(cfg.model, cfg.device, cfg.dtype, cache_dir, cfg.find_links)
            self._model_key = key
        return self._loaded

    def drop_model(self) -> None:
        self._model_key, self._loaded, self._lm_key, self._lm = None, None, None, None

    def lm(self, loaded, batch_size: int, max_length: int | None, scoring: str = "hflm"):
        from experiments.harness.evaluate import make_lm

        key = (id(loaded), batch_size, max_length, scoring)
        if key != self._lm_key:
            self._lm, self._lm_key = make_lm(loaded.model, loaded.tokenizer, batch_size, max_length, scoring), key
        return self._lm

    def tasks(self, specs, cfg: DictConfig, data_dir: Path | None):
        from experiments.harness.evaluate import PreparedTasks

        key = _key([s.name for s in specs], cfg.data.source, str(data_dir), cfg.num_fewshot, cfg.seed)
        if key not in self._tasks:
            self._tasks[key] = PreparedTasks(specs, data_source=cfg.data.source, data_dir=data_dir,
                                             num_fewshot=cfg.num_fewshot, seed=cfg.seed)
        return self._tasks[key]


SESSION = Session()


class Stages:
    """Wall-clock seconds per stage of one job (written into the record; the sweep benchmark prints them)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - t0, 3)
