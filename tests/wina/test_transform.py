"""The transform is function-preserving on every supported family (small random configs built in code)."""

import pytest
import torch
from transformers import (Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM, MistralConfig,
                          MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM)

from wina.transform import apply_transform_, rotation_macs_per_token

COMMON = dict(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=128)


def _random_norms_(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
            if name.endswith("bias"):
                p.normal_(0, 0.1)
    return model.eval()


FAMILIES = {
    "llama": lambda: LlamaForCausalLM(LlamaConfig(**COMMON)),
    "mistral": lambda: MistralForCausalLM(MistralConfig(**COMMON)),
    "qwen2": lambda: Qwen2ForCausalLM(Qwen2Config(**COMMON)),
    "gemma3": lambda: Gemma3ForCausalLM(Gemma3TextConfig(**COMMON, head_dim=16)),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_transform_is_function_preserving(family):
    torch.manual_seed(0)
    model = _random_norms_(FAMILIES[family]())
    ids = torch.randint(0, 97, (2, 24))
    with torch.no_grad():
        ref = model(ids).logits
        apply_transform_(model)
        out = model(ids).logits
    assert (out - ref).abs().max() / ref.abs().max() < 1e-5
    assert rotation_macs_per_token(model) == 2 * 2 * 64 * 64  # two d x d rotations per layer


def test_unsupported_architecture_is_refused():
    from transformers import GPT2Config, GPT2LMHeadModel

    from wina import SparsityError, build_config, sparsify_

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50))
    with pytest.raises(SparsityError, match="model type 'gpt2' is not supported"):
        sparsify_(model, build_config("wina", dict(sparsity=0.5, allocation="uniform")))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method,fields", [("wina", dict(allocation="uniform")), ("rsparse", dict(alpha=0.9, mask="topk"))])
def test_every_family_is_gated_to_the_target(family, method, fields):
    from wina import build_config, sparsify_

    torch.manual_seed(0)
    model = _random_norms_(FAMILIES[family]())
    ids = torch.randint(0, 97, (2, 24))
    with torch.no_grad():
        dense = model(ids).logits
        sp = sparsify_(model, build_config(method, {**fields, "sparsity": 0.5}))
        sp.reset_counts()
        out = model(ids).logits
    assert len(sp.modules) == 2 * 7
    expected = 0.5 if method == "wina" else 1 - 0.5 * 0.9  # R-Sparse: channel sparsity 1 - (1 - s) alpha
    assert abs(sp.measured(model).overall - expected) < 0.02
    assert not torch.allclose(out, dense)


def test_fused_projections_are_refused_with_the_reason():
    from transformers import Phi3Config, Phi3ForCausalLM

    from wina import SparsityError, build_config, sparsify_

    with torch.device("meta"):
        model = Phi3ForCausalLM(Phi3Config(**COMMON, pad_token_id=0))
    with pytest.raises(SparsityError, match="model type 'phi3' fuses its projections \\(qkv_proj and gate_up_proj\\)"):
        sparsify_(model, build_config("wina", dict(sparsity=0.5, allocation="uniform")))
