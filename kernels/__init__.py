"""Triton kernels that turn skipped input channels into decode speed.

Public API (Triton imported by the submodules, not here):
  kernels.gated_gemv.gated_linear(x, w_t, threshold, bias=None, scale=None, *,
                                  dense_cutoff=0.9, config=None, out=None, reduce=True)
      y = (x * (|x| * scale > threshold)) @ w_t + bias, w_t = W.t().contiguous() [in, out]
  kernels.dispatch.gated_linear_auto(x, weight, w_t, threshold, bias=None, scale=None, *,
                                     max_rows=1, dense_cutoff=0.9)
  kernels.dispatch.gated_linear_torch(x, weight, threshold, bias=None, scale=None)
  kernels.select.calibrate_threshold(x_samples, scale, sparsity) -> float
  kernels.select.topk_threshold(x, k, scale=None) -> per-row threshold [..., 1]
The harness reaches the kernel through wina.gated.GatedLinear (single-row CUDA calls).
Launch configs: kernels/tuned_configs.json (H100 sweep), else a heuristic.
"""
