"""Triton kernels that turn skipped input channels into decode speed.

Public API (Triton imported lazily by the submodules):
  kernels.gated_gemv.gated_linear(x, w_t, threshold, bias=None, scale=None)
  kernels.dispatch.gated_linear_auto(x, weight, w_t, threshold, bias=None, scale=None)
  kernels.dispatch.gated_linear_torch(x, weight, threshold, bias=None, scale=None)
  kernels.select.calibrate_threshold(x_samples, scale, sparsity)
  kernels.select.topk_threshold(x, k, scale=None)
  kernels.module.GatedLinear
"""
