"""Which modules of which architecture the sparsity methods act on.

A *target* is one place whose input channels can be skipped: a projection inside a decoder layer
(q/k/v read the attention input, o the attention output, gate/up the MLP input, down the MLP
intermediate), or, for CATS, the MLP's activation (skipping a neuron skips a row of up and a column of down).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from wina.errors import SparsityError

# model_type -> (norm feeding attention, norm feeding the MLP)
SUPPORTED = {
    "llama": ("input_layernorm", "post_attention_layernorm"),
    "mistral": ("input_layernorm", "post_attention_layernorm"),
    "qwen2": ("input_layernorm", "post_attention_layernorm"),
    "gemma3_text": ("input_layernorm", "pre_feedforward_layernorm"),
    "gemma3": ("input_layernorm", "pre_feedforward_layernorm"),
}
PROJECTIONS = {  # kind -> (submodule, attribute, site: which activation it reads)
    "q": ("self_attn", "q_proj", "attn_in"),
    "k": ("self_attn", "k_proj", "attn_in"),
    "v": ("self_attn", "v_proj", "attn_in"),
    "o": ("self_attn", "o_proj", "attn_out"),
    "gate": ("mlp", "gate_proj", "mlp_in"),
    "up": ("mlp", "up_proj", "mlp_in"),
    "down": ("mlp", "down_proj", "mlp_mid"),
}
KINDS = tuple(PROJECTIONS)
ATTN_KINDS = ("q", "k", "v", "o")


@dataclass
class Target:
    layer: int
    kind: str  # q, k, v, o, gate, up, down, or act (CATS)
    site: str  # the activation it reads: attn_in, attn_out, mlp_in, mlp_mid, mlp_act
    parent: nn.Module
    attr: str
    in_features: int
    params_per_channel: int  # weights one skipped input channel saves reading

    @property
    def key(self) -> str:
        return f"{self.layer}.{self.kind}"

    @property
    def module(self) -> nn.Module:
        return getattr(self.parent, self.attr)


# Families whose projections are fused into one linear: refused with the reason (microsoft/wina gives every fused
# projection the weight-informed score; this harness gates q/k/v and gate/up separately and does not split them).
FUSED = {"phi3": "qkv_proj and gate_up_proj"}


def model_type(model: nn.Module) -> str:
    cfg = getattr(model, "config", None)
    mt = getattr(getattr(cfg, "text_config", None), "model_type", None) or getattr(cfg, "model_type", None)
    if mt in FUSED:
        raise SparsityError(f"model type {mt!r} fuses its projections ({FUSED[mt]}); the methods here gate q/k/v and "
                            f"gate/up as separate linears, so it is not supported; supported: {', '.join(SUPPORTED)}")
    if mt not in SUPPORTED:
        raise SparsityError(f"model type {mt!r} is not supported by the sparsity methods; supported: {', '.join(SUPPORTED)}")
    return mt


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    model_type(model)
    inner = getattr(model, "model", model)
    inner = getattr(inner, "language_model", inner)
    layers = getattr(inner, "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise SparsityError(f"cannot find the decoder layers of {type(model).__name__}")
    return layers


def _linear(layer: nn.Module, kind: str) -> nn.Linear:
    sub, attr, _ = PROJECTIONS[kind]
    lin = getattr(getattr(layer, sub), attr)
    weight = getattr(lin, "weight", None)
    if weight is None or weight.dim() != 2:
        raise SparsityError(f"{type(layer).__name__}.{sub}.{attr} is not a plain linear layer ({type(lin).__name__})")
    return lin


def linear_targets(model: nn.Module) -> list[Target]:
    """The seven projections of every decoder layer."""
    out = []
    for i, layer in enumerate(decoder_layers(model)):
        for kind, (sub, attr, site) in PROJECTIONS.items():
            lin = _linear(layer, kind)
            out.append(Target(i, kind, site, getattr(layer, sub), attr, lin.in_features, lin.out_features))
    return out


def activation_targets(model: nn.Module) -> list[Target]:
    """The MLP activation of every layer (CATS): a skipped neuron saves a row of up and a column of down."""
    out = []
    for i, layer in enumerate(decoder_layers(model)):
        up, down = _linear(layer, "up"), _linear(layer, "down")
        if not hasattr(layer.mlp, "act_fn"):
            raise SparsityError(f"{type(layer.mlp).__name__} has no act_fn to threshold")
        out.append(Target(i, "act", "mlp_act", layer.mlp, "act_fn", up.out_features, up.in_features + down.out_features))
    return out


def block_params(model: nn.Module) -> dict[str, int]:
    """Weight count of each projection kind in one decoder layer (layers are identical)."""
    layer = decoder_layers(model)[0]
    return {kind: _linear(layer, kind).weight.numel() for kind in KINDS}
