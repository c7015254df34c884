"""nn.Module wrapper: a (possibly fused) gated linear layer for decode.

    layer = GatedLinear.from_linears([q_proj, k_proj, v_proj], threshold=t, scale=c)
    q, k, v = layer(x)            # one gate, one kernel over the concatenated weight

threshold: float / 0-d tensor (TEAL), per-channel [in] tensor (WINA: t / c), or use
``scale`` (WINA: column norms c) with a scalar threshold.  Call ``set_threshold`` to
recalibrate; the stored tensors are updated in place, so captured CUDA graphs see it.
"""
from __future__ import annotations

import torch
from torch import nn

from .dispatch import DEFAULT_MAX_ROWS, gated_linear_auto


class GatedLinear(nn.Module):
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None, threshold=0.0,
                 scale: torch.Tensor | None = None, split_sizes: list[int] | None = None,
                 keep_weight: bool = True, max_rows: int = DEFAULT_MAX_ROWS):
        super().__init__()
        weight = weight.detach()
        self.register_buffer("w_t", weight.t().contiguous())
        self.register_buffer("weight", weight.contiguous() if keep_weight else None)
        self.register_buffer("bias", bias.detach().clone() if bias is not None else None)
        self.register_buffer("scale", scale.detach().float().clone() if scale is not None else None)
        self.register_buffer("threshold", torch.zeros((), dtype=torch.float32, device=weight.device))
        self.split_sizes = split_sizes
        self.max_rows = max_rows
        self.set_threshold(threshold)

    @classmethod
    def from_linears(cls, linears, threshold=0.0, scale=None, **kw) -> "GatedLinear":
        """Concatenate linears that share one input (q/k/v, gate/up) into one gated layer."""
        linears = list(linears)
        w = torch.cat([l.weight for l in linears], 0)
        has_b = [l.bias is not None for l in linears]
        b = torch.cat([l.bias for l in linears]) if all(has_b) else None
        if any(has_b) and not all(has_b):
            b = torch.cat([l.bias if l.bias is not None else l.weight.new_zeros(l.out_features)
                           for l in linears])
        split = [l.out_features for l in linears] if len(linears) > 1 else None
        return cls(w, b, threshold, scale, split_sizes=split, **kw)

    def column_norms(self) -> torch.Tensor:
        """WINA scale c_i = ||W[:, i]||_2 (over all concatenated outputs)."""
        return self.w_t.float().norm(dim=1)

    @torch.no_grad()
    def set_threshold(self, threshold) -> None:
        t = torch.as_tensor(threshold, dtype=torch.float32, device=self.w_t.device)
        if t.shape != self.threshold.shape:
            self.threshold = t.clone()
        else:
            self.threshold.copy_(t)

    def forward(self, x: torch.Tensor):
        y = gated_linear_auto(x, self.weight, self.w_t, self.threshold, self.bias, self.scale,
                              max_rows=self.max_rows)
        if self.split_sizes:
            return torch.split(y, self.split_sizes, dim=-1)
        return y


__all__ = ["GatedLinear"]
