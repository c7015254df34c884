"""Analytic FLOPs per token, dense and effective (from the sparsity measured during evaluation).

Counted per token, in multiply-accumulates (MACs; FLOPs = 2 MACs):
- the seven projections of every layer (minus the skipped input channels, as measured),
- lm_head (dense),
- R-Sparse's low-rank term ``r (in + out)`` per projection,
- WINA's transform: one ``d x d`` rotation per pre-norm output (two per layer),
- attention scores and the weighted sum, ``2 * n_heads * head_dim * L`` at context length ``L`` (always dense).
CATS's dense gate_proj is included because CATS only skips up/down neurons.
The WINA paper's Table 5 "GFLOPs per token" are the linear MACs (projections + lm_head); ``paper_gflops`` repeats
that convention so the numbers can be compared.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from wina.targets import block_params, decoder_layers
from wina.transform import rotation_macs_per_token


def _attention_dims(model: nn.Module) -> tuple[int, int]:
    cfg = getattr(model.config, "text_config", None) or model.config
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    return heads, head_dim


def lm_head_macs(model: nn.Module) -> int:
    head = model.get_output_embeddings()
    return head.weight.numel() if head is not None else 0


def attention_macs(model: nn.Module, context_len: int) -> int:
    heads, head_dim = _attention_dims(model)
    return 2 * heads * head_dim * context_len * len(decoder_layers(model))


@dataclass(frozen=True)
class FlopsReport:
    context_len: int
    dense_gflops: float  # FLOPs (2 x MACs) per token, dense: projections, lm_head, attention scores
    effective_gflops: float  # the same at the measured sparsity, plus low-rank terms and rotations
    ratio: float  # effective / dense, in MACs
    paper_gflops_dense: float  # the WINA paper's Table 5 convention: linear MACs only (projections + lm_head)
    paper_gflops_effective: float  # ... at the measured sparsity; omits WINA's rotations, as the paper does
    paper_gflops_effective_with_rotations: float  # the same convention counting the rotations (2 d^2 per layer)
    parts_gmacs: dict[str, float]


def table5_gflops(model: nn.Module, sparsity: float) -> float:
    """The WINA paper's Table 5 "GFLOPs per token": linear MACs of the seven projections at a uniform ``sparsity``
    plus the dense lm_head (no attention scores, no rotations). Needs only shapes: works on the meta device."""
    proj = sum(block_params(model).values()) * len(decoder_layers(model))
    return (proj * (1.0 - sparsity) + lm_head_macs(model)) * 1e-9


def flops_report(model: nn.Module, sparsified=None, context_len: int = 512) -> FlopsReport:
    n_layers = len(decoder_layers(model))
    proj_dense = sum(block_params(model).values()) * n_layers
    head = lm_head_macs(model)
    attn = attention_macs(model, context_len)
    skipped = extra = 0.0
    if sparsified is not None:
        for t in sparsified.targets:
            m = sparsified.modules[t.key]
            if m.measured is not None:  # what the computation skipped: every position, dense prefixes included
                skipped += m.measured_all_positions * t.in_features * t.params_per_channel
            macs = getattr(m.gate, "extra_macs", None)
            if macs is not None and m.gate.level > 0:
                extra += macs()
    transform = rotation_macs_per_token(model)
    proj_eff = proj_dense - skipped + extra
    dense_total = proj_dense + head + attn
    eff_total = proj_eff + head + attn + transform
    g = 1e-9
    return FlopsReport(
        context_len=context_len,
        dense_gflops=2 * dense_total * g,
        effective_gflops=2 * eff_total * g,
        ratio=eff_total / dense_total,
        paper_gflops_dense=(proj_dense + head) * g,
        paper_gflops_effective=(proj_eff + head) * g,
        paper_gflops_effective_with_rotations=(proj_eff + head + transform) * g,
        parts_gmacs={
            "projections_dense": proj_dense * g,
            "projections_effective": (proj_dense - skipped) * g,
            "lowrank": extra * g,
            "transform": transform * g,
            "lm_head": head * g,
            "attention_scores": attn * g,
        },
    )
