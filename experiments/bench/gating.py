"""What gating costs in a batched forward (the log-likelihood loop's work): the dense model against each method's
gated model, with the PyTorch gates (``kernel=off``) and with the one-pass mask kernel (``kernel=auto``), side by
side in one process on the same batch, and how far the two gated paths' logits are apart.

    python -m experiments.bench.gating [--methods wina,teal-topk,teal,cats,rsparse] [--sparsity 0.65]
                                       [--batch 64] [--length 128] [run.py overrides ...]

Each method is applied as ``python run.py method=<m> sparsity=<s>`` would apply it (its YAML, the token policy)
but with ``allocation=uniform`` where it has an allocation (the cost of gating does not depend on how the levels
are split, and the greedy search is not what is timed here). Input: a batch of the harness's calibration text.
Prints a row per method: ms per forward (dense, gated PyTorch, gated kernel), the ratios to dense, and the
largest logit difference between the two gated paths relative to the logits' scale.
"""

from __future__ import annotations

import argparse
import time

import torch

from experiments.harness.tables import markdown_table

FALLBACK_SPARSITY = 0.4
UNIFORM = {"wina", "wina-notransform", "wina-threshold", "teal", "teal-topk", "teal-transform"}


def _time(fn, warmup: int = 3, reps: int = 10) -> float:
    """Milliseconds per call."""
    for _ in range(warmup):
        fn()
    if not torch.cuda.is_available():
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.perf_counter() - t0) * 1e3 / reps
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps


def _set_kernel(model, mode: str) -> None:
    from wina.gated import Counter

    for m in model.modules():
        if isinstance(m, Counter):
            m.kernel = mode


def main(argv: list[str] | None = None) -> None:
    from experiments.harness.pipeline import cache_dir_of
    from experiments.harness.schema import compose_config
    from experiments.harness.session import SESSION
    from experiments.harness.sparsity import calibration_config, calibration_tokens, method_config
    from wina import NotReachable, sparsify_

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="wina,teal-topk,teal,cats,rsparse")
    ap.add_argument("--sparsity", type=float, default=0.65)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--length", type=int, default=128)
    args, overrides = ap.parse_known_args(argv)

    base = compose_config(list(overrides))
    cache_dir = cache_dir_of(base)
    data_dir, _ = SESSION.data(base.data, cache_dir, base.find_links)
    loaded = SESSION.model(base, cache_dir)
    model, device = loaded.model, next(loaded.model.parameters()).device
    text = calibration_tokens(loaded.tokenizer, data_dir, calibration_config(base))
    flat = torch.cat([t.flatten() for t in text])
    need = args.batch * args.length
    ids = flat.repeat(need // flat.numel() + 1)[:need].view(args.batch, args.length).to(device)

    @torch.no_grad()
    def forward():
        return model(input_ids=ids, use_cache=False).logits

    dense_ms = _time(forward)
    rows = [("dense", f"{dense_ms:.2f}", "", "", "", "", "")]
    for method in args.methods.split(","):
        extra = ["method.allocation=uniform"] if method in UNIFORM else []
        sp, label = None, method
        for sparsity in (args.sparsity, FALLBACK_SPARSITY):  # CATS cannot reach every sparsity
            cfg = compose_config([*overrides, f"method={method}", f"sparsity={sparsity}", *extra])
            calib = calibration_config(cfg)
            try:
                sp = sparsify_(model, method_config(cfg), calibration_tokens(loaded.tokenizer, data_dir, calib),
                               cache_dir=cache_dir, calibration=calib)
                break
            except NotReachable:
                label = f"{method} (s={FALLBACK_SPARSITY:g}: {args.sparsity:g} is not reachable)"
        try:
            timings, logits = {}, {}
            for mode in ("off", "auto"):
                _set_kernel(model, mode)
                timings[mode] = _time(forward)
                logits[mode] = forward().float()
            scale = float(logits["off"].abs().max())
            diff = float((logits["auto"] - logits["off"]).abs().max()) / max(scale, 1e-30)
            rows.append((label, "", f"{timings['off']:.2f}", f"{timings['auto']:.2f}",
                         f"{timings['off'] / dense_ms:.2f}", f"{timings['auto'] / dense_ms:.2f}", f"{diff:.1e}"))
        finally:
            sp.restore_()
    print(f"gating: {loaded.name} {str(next(model.parameters()).dtype)} on {device}, batch {args.batch} x "
          f"{args.length} tokens, sparsity {args.sparsity:g}, allocation uniform\n")
    print(markdown_table(("method", "dense ms", "gated ms (PyTorch gates)", "gated ms (mask kernel)",
                          "PyTorch / dense", "kernel / dense", "logit diff (max, relative)"), rows))


if __name__ == "__main__":
    main()
