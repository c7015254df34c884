"""WINA's function-preserving orthogonal transform.

For each decoder layer, the pre-norm scale ``gamma`` is folded into the linears that read it
(``W <- W diag(gamma)``, the norm's scale becomes 1), then
``Q_attn = V`` from the SVD (float64) of the folded ``k_proj`` weight and ``Q_mlp = V`` from that of ``gate_proj``.
The norm's output is rotated, ``x~ = x Q``, and the readers get ``W~ = W Q``: ``W~ x~ = W x`` exactly,
and ``W~ = U S`` has orthogonal columns whose norms are the singular values, the condition of WINA's theorem.
The rotations are computed once per weight in a process (``wina.memo``): a sweep's later jobs reuse them.

The rotation sits right after the norm (not on the residual stream), so embeddings, lm_head, o_proj and
down_proj are untouched and any pre-norm architecture works, RMSNorm with mean subtraction or not, with or
without post-norms (Gemma3). Its price is one ``d x d`` matrix product per norm output: ``2 d^2`` MACs per layer
and token, the same as the shortcut rotations of a residual-stream rotation; ``flops.py`` counts it.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from wina import memo
from wina.targets import decoder_layers, model_type, SUPPORTED


class Rotation(nn.Module):
    """``x -> x @ Q`` (Q orthogonal, stored in the model's dtype)."""

    def __init__(self, q: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("q", q)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.q.to(x.dtype)


class RotatedNorm(nn.Module):
    def __init__(self, norm: nn.Module, q: torch.Tensor) -> None:
        super().__init__()
        self.norm = norm
        self.rotation = Rotation(q)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rotation(self.norm(x))


def _unit_scale_(norm: nn.Module, gemma_style: bool) -> torch.Tensor:
    """Set the norm's scale to the identity and return the scale it had (float64)."""
    w = norm.weight.data
    gamma = (1.0 + w.double()) if gemma_style else w.double()
    norm.weight.data = torch.zeros_like(w) if gemma_style else torch.ones_like(w)
    return gamma


def _rotation(basis: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """``V`` of the SVD (float64) of the folded basis weight ``basis diag(gamma)``: ``[d, d]``, its columns the right
    singular vectors by decreasing singular value."""
    _, _, vh = torch.linalg.svd(basis.double() * gamma, full_matrices=True)
    return vh.T.contiguous()


def _rotate_readers_(readers: list[nn.Linear], gamma: torch.Tensor, q: torch.Tensor) -> None:
    for lin in readers:
        w = lin.weight.data
        lin.weight.data = ((w.double() * gamma) @ q).to(w.dtype)


def is_transformed(model: nn.Module) -> bool:
    return isinstance(decoder_layers(model)[0].input_layernorm, RotatedNorm)


@torch.no_grad()
def apply_transform_(model: nn.Module) -> None:
    """Rotate every layer in place; the model computes the same function (to float rounding)."""
    if is_transformed(model):
        return
    mt = model_type(model)
    attn_norm, mlp_norm = SUPPORTED[mt]
    gemma_style = mt.startswith("gemma")
    for layer in decoder_layers(model):
        attn, mlp = layer.self_attn, layer.mlp
        for norm_name, readers, basis in (
            (attn_norm, [attn.q_proj, attn.k_proj, attn.v_proj], attn.k_proj),
            (mlp_norm, [mlp.gate_proj, mlp.up_proj], mlp.gate_proj),
        ):
            norm = getattr(layer, norm_name)
            inputs = (basis.weight.detach(), norm.weight.detach())  # before the scale is folded (the memo's key)
            gamma = _unit_scale_(norm, gemma_style)
            (q,) = memo.MEMO.get(f"wina-rotation-{mt}", inputs, lambda: (_rotation(inputs[0], gamma),))
            _rotate_readers_(readers, gamma, q)
            setattr(layer, norm_name, RotatedNorm(norm, q.to(norm.weight.dtype)))


def rotation_macs_per_token(model: nn.Module) -> int:
    """Extra multiply-accumulates per token that the transform adds (two d x d products per layer)."""
    layers = decoder_layers(model)
    return sum(m.rotation.q.numel() for layer in layers for m in layer.modules() if isinstance(m, RotatedNorm))


def transform_if_asked_(model: nn.Module, transform: bool) -> dict:
    """Apply the transform when a method's config asks for it (WINA; the WINA paper's TEAL-transform);
    returns the facts the record keeps."""
    if not transform:
        return {"transform": False}
    apply_transform_(model)
    return {"transform": True, "transform_macs_per_token": rotation_macs_per_token(model)}
