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
  kernels.mask.masked_activations(x, rule, value, scale, dense_prefix, kept) -> x * keep
      one pass for batched calls: exact per-row top-k ("topk", k) or "threshold" on |x| * scale, dense prefix
      kept, kept counts added to ``kept`` on the device
The harness reaches the kernels through wina.gated.GatedLinear / GatedActivation (CUDA calls, kernel=auto).
Launch configs: kernels/tuned_configs.json (H100 sweep), else a heuristic.
"""
