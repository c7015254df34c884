import os
from pathlib import Path

import pytest
import torch

if not torch.cuda.is_available():  # Triton kernels run through the interpreter on CPU (before triton is imported)
    os.environ.setdefault("TRITON_INTERPRET", "1")

ROOT = Path(__file__).resolve().parents[1]

import baselines.cats  # noqa: E402,F401  (register the baselines that tests build by name)
import baselines.rsparse  # noqa: E402,F401
import baselines.teal  # noqa: E402,F401


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    """Where real assets are cached across test runs: $WINA_CACHE or the user's cache dir."""
    from experiments.harness.assets import default_cache_dir

    return default_cache_dir()


@pytest.fixture(scope="session")
def smollm2(cache_dir):
    """SmolLM2-135M with its real (4-bit GGUF, dequantized) weights, float32 on CPU."""
    from experiments.harness.models import load_model
    from experiments.harness.schema import load_option

    return load_model(load_option("model", "smollm2-135m"), device="cpu", dtype="float32", cache_dir=cache_dir)


@pytest.fixture(scope="session")
def tiny():
    from experiments.harness.models import load_model
    from experiments.harness.schema import load_option

    return load_model(load_option("model", "tiny-random"), device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def data_dir(cache_dir):
    from experiments.harness.schema import load_option
    from experiments.harness.task_data import ensure_data

    return ensure_data(load_option("data", "local"), cache_dir)[0]


@pytest.fixture(scope="session")
def calib_tokens(smollm2, data_dir):
    """16 x 128 LAMBADA tokens for calibration (never evaluated)."""
    from experiments.harness.sparsity import calibration_tokens
    from wina.calibrate import CalibrationConfig

    return calibration_tokens(smollm2.tokenizer, data_dir, CalibrationConfig(n_samples=16, seq_len=128))


@pytest.fixture(scope="session")
def heldout_tokens(smollm2, data_dir):
    """4 x 128 tokens of HellaSwag contexts: text the calibration never saw."""
    import torch

    from experiments.harness.task_data import read_jsonl

    docs = read_jsonl(data_dir / "hellaswag" / "validation.jsonl")[:200]
    ids = smollm2.tokenizer(" ".join(d["ctx"] for d in docs)).input_ids[: 4 * 128]
    return torch.tensor(ids).view(4, 128)


@pytest.fixture
def fresh_smollm2(smollm2):
    """A private copy of SmolLM2 that a test may sparsify in place."""
    import copy

    return copy.deepcopy(smollm2.model)
