import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROSE = (
    "The old lighthouse stood at the edge of the cliff for more than a hundred years. Every evening the keeper "
    "climbed the narrow stairs, cleaned the glass and lit the lamp, so that the fishing boats could find their way "
    "home through the fog. When the town grew and the harbour was moved further south, the light was no longer "
    "needed, but the people kept it burning because it reminded them of the families who had lived there."
)


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    """Where real assets are cached across test runs: $WINA_CACHE or the user's cache dir."""
    from experiments.assets import default_cache_dir

    return default_cache_dir()


@pytest.fixture(scope="session")
def smollm2(cache_dir):
    """SmolLM2-135M with its real (4-bit GGUF, dequantized) weights, float32 on CPU."""
    from omegaconf import OmegaConf

    from experiments.models import load_model

    cfg = OmegaConf.load(ROOT / "conf" / "model" / "smollm2-135m.yaml")
    return load_model(cfg, device="cpu", dtype="float32", cache_dir=cache_dir)


@pytest.fixture(scope="session")
def tiny():
    from omegaconf import OmegaConf

    from experiments.models import load_model

    return load_model(OmegaConf.load(ROOT / "conf" / "model" / "tiny-random.yaml"), device="cpu", dtype="float32")
