"""The one-pass mask kernel (``kernels.mask``) against the memory floor and the PyTorch gates, on the shapes a
batched forward gates (SmolLM2: 576 channels into q/k/v/o/gate/up, 1536 into down).

    python -m experiments.bench.mask [--rows 64x128] [--widths 576,1536] [--sparsity 0.65] [--dtype bf16]
                                     [--rules topk,threshold] [--sweep]
    TRITON_CACHE_DIR=$(mktemp -d) python -m experiments.bench.mask --compiles

Per width and rule, side by side in one process on the same input: a copy of the activation (read + write, the
floor any separate masking pass pays), the PyTorch gate (``x * mask`` with the dense prefix, as ``wina.gated``
computes it without the kernel), and the kernel at its default launch configuration (``--sweep``: at every
configuration of rows per program x warps, each checked equal to the default's output); top-k also with its
bisection started from the whole key range rather than the window below the row's largest score (same output).
Prints microseconds and the ratios to the copy: GPU time, the median of 50 replays of 20 calls captured in one CUDA
graph (the launch cost a forward pays on the host is not in it; ``experiments.bench.gating`` times whole forwards).
Input: random normal activations ``[batch, length, width]`` with a per-channel scale (a WINA-like weight-informed
score), the token policy's 1% dense prefix.
"""

from __future__ import annotations

import argparse
import itertools

import torch

from experiments.bench.gating import _time as _host_time
from experiments.bench.kernels import graph_time_us
from experiments.harness.tables import markdown_table

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
SWEEP_ROWS, SWEEP_WARPS = (1, 2, 4, 8, 16), (1, 2, 4, 8)


def _us(fn) -> float:
    """Microseconds per call: on a GPU, the GPU's own time (``experiments.bench.kernels.graph_time_us``: calls
    captured in one CUDA graph and replayed, the Python launch cost a forward pays separately left out); on a CPU,
    wall time per call."""
    if torch.cuda.is_available():
        return graph_time_us([fn], calls_min=20)
    return _host_time(fn, reps=20) * 1e3


def _same_selection(a: torch.Tensor, b: torch.Tensor, score: torch.Tensor) -> bool:
    """The two gated copies keep the same scores in every row (torch.topk breaks ties at the k-th score in its own
    order, the kernel in channel order: the kept channels may differ there, their scores may not)."""
    def kept_scores(y):
        return torch.where(y != 0, score, -1.0).sort(dim=-1).values
    return torch.equal(kept_scores(a), kept_scores(b))


def first_calls(dtype) -> None:
    """Seconds of 80 first calls over varied shapes and the kernel variants compiled for them (run it in a fresh
    process with an empty TRITON_CACHE_DIR: Triton keeps compiled kernels on disk)."""
    import time

    from kernels.mask import _masked_kernel, masked_activations

    kept = torch.zeros(2, dtype=torch.int64, device="cuda")
    scale = torch.rand(576, device="cuda").to(dtype)
    calls, start = 0, time.perf_counter()
    for batch, length, k in itertools.product((255, 256), (1, 17, 32, 100, 150), (1, 16, 100, 201)):
        x = torch.randn(batch, length, 576, device="cuda", dtype=dtype)
        for s in (None, scale):
            masked_activations(x, "topk", k, s, length - int(0.99 * length), kept)
            calls += 1
    torch.cuda.synchronize()
    variants = sum(len(cache[0]) for cache in getattr(_masked_kernel, "device_caches", {}).values())
    print(f"{calls} first calls over varied shapes: {time.perf_counter() - start:.1f} s; "
          f"kernel variants compiled: {variants}")


def main(argv: list[str] | None = None) -> None:
    from kernels.mask import launch_config, masked_activations
    from wina.gated import TokenPolicy, dense_prefix_len
    from kernels.score import threshold_mask, topk_mask

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="64x128", help="batch x length")
    ap.add_argument("--widths", default="576,1536")
    ap.add_argument("--sparsity", type=float, default=0.65)
    ap.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    ap.add_argument("--rules", default="topk,threshold")
    ap.add_argument("--sweep", action="store_true", help="every launch configuration, not only the default")
    ap.add_argument("--compiles", action="store_true",
                    help="instead: the first 80 calls over varied batch, length, k and scale in this process (what a "
                         "sweep's first gated loop meets), their seconds and how many kernel variants Triton compiled")
    args = ap.parse_args(argv)
    if args.compiles:
        return first_calls(DTYPES[args.dtype])

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        from kernels import dispatch
        dispatch.ALLOW_CPU_KERNEL = True
    dtype = DTYPES[args.dtype]
    batch, length = (int(v) for v in args.rows.split("x"))
    policy = TokenPolicy(0.01)
    prefix = dense_prefix_len(length, 0.01)
    gen = torch.Generator(device="cpu").manual_seed(0)
    rows = []
    for n, rule in itertools.product([int(w) for w in args.widths.split(",")], args.rules.split(",")):
        x = torch.randn(batch, length, n, generator=gen).to(device, dtype)
        scale = (torch.rand(n, generator=gen) + 0.5).to(device, dtype)
        k = int(n * (1 - args.sparsity))
        score = (x.abs() * scale).float()
        value = k if rule == "topk" else float(score.flatten().kthvalue(int(score.numel() * args.sparsity)).values)
        kept = torch.zeros(2, dtype=torch.int64, device=device)
        y = torch.empty_like(x)

        def torch_gate():
            mask = topk_mask(x, k, scale) if rule == "topk" else threshold_mask(x, value, scale)
            mask, _ = policy.apply_(mask)
            return x * mask

        def kernel(config=None, window=True):
            return masked_activations(x, rule, value, scale, prefix, kept, config, window)

        copy_us = _us(lambda: y.copy_(x))
        torch_us = _us(torch_gate)
        reference = kernel()
        if not _same_selection(reference, torch_gate(), score):
            raise SystemExit(f"kernel differs from the PyTorch gate at width {n}, rule {rule}")
        configs = [(launch_config(n, rule), True)] + ([(launch_config(n, rule), False)] if rule == "topk" else [])
        if args.sweep:
            configs += [(c, True) for c in itertools.product(SWEEP_ROWS, SWEEP_WARPS) if c != configs[0][0]]
        for config, window in configs:
            try:
                if not torch.equal(kernel(config, window), reference):
                    raise SystemExit(f"config {config} differs from the default at width {n}, rule {rule}")
                us = _us(lambda: kernel(config, window))
            except SystemExit:
                raise
            except Exception as e:  # a launch the device cannot take (too many registers or shared memory)
                rows.append((n, rule, f"{config}", "", f"{type(e).__name__}", "", "", ""))
                continue
            label = (f"{config}" + (" (default)" if (config, window) == configs[0] else "")
                     + ("" if window else " window off"))
            rows.append((n, rule, label, f"{copy_us:.1f}",
                         f"{torch_us:.1f}", f"{us:.1f}", f"{us / copy_us:.2f}", f"{torch_us / us:.2f}"))
    print(f"mask kernel: {torch.cuda.get_device_name() if device == 'cuda' else 'cpu (Triton interpreter)'}, "
          f"{args.dtype}, rows {batch} x {length}, sparsity {args.sparsity:g}, dense prefix {prefix}\n")
    print(markdown_table(("width", "rule", "config (rows, warps)", "copy us", "PyTorch gate us", "kernel us",
                          "kernel / copy", "PyTorch / kernel"), rows))


if __name__ == "__main__":
    main()
