"""Kernels that turn skipped input channels into decode speed: Triton (portable, tested on CPU under the interpreter)
and a CUDA C++ single-row kernel (``gated_gemv.cu``, built with nvcc on first use where a CUDA device is present).

Public API (Triton imported by the submodules, not here):
  kernels.cuda_gemv.gated_linear_cuda(x, w_t, threshold, bias=None, scale=None, *, config=None)
      the same function for one row, in CUDA C++ (``kernels.dispatch`` takes it where it builds)
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
Launch configs: kernels/tuned_configs.json (Triton) and kernels/cuda_tuned.json (CUDA), H100 sweeps, else a rule.
"""
