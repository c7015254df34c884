import math

import pytest
import torch

from experiments.analysis.check_models import PROSE


@pytest.mark.real
def test_smollm2_loads_with_real_weights_and_sane_perplexity(smollm2):
    model, tok = smollm2.model, smollm2.tokenizer
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.num_hidden_layers == 30
    assert smollm2.assets["gguf_sha256"].startswith("b179c952")
    ids = tok(PROSE, return_tensors="pt").input_ids
    with torch.no_grad():
        ppl = math.exp(model(ids, labels=ids).loss.item())
    assert 3.0 < ppl < 40.0, ppl  # random weights give ~vocab size (49152)


def test_tiny_random_runs_forward(tiny):
    ids = tiny.tokenizer("hello world", return_tensors="pt").input_ids
    out = tiny.model(ids).logits
    assert out.shape == (1, ids.shape[1], len(tiny.tokenizer)) and torch.isfinite(out).all()


def test_bad_device_and_dtype_are_reported():
    from experiments.harness.errors import HarnessError
    from experiments.harness.models import resolve_device, resolve_dtype

    with pytest.raises(HarnessError, match="dtype='float8'"):
        resolve_dtype("float8", torch.device("cpu"))
    with pytest.raises(HarnessError, match="device='gpu0'"):
        resolve_device("gpu0")
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
