"""Decode speed through the harness's own modules: a transformers Llama-3-8B-shaped model (random bf16 weights)
gated by ``sparsify_`` with the configuration a method YAML gives, batch 1, each decode step captured in a
CUDA graph (static KV cache). Prints tokens/s per configuration next to the sparsity measured on the same steps.

    python -m experiments.bench.decode [--layers 32] [--methods teal,wina] [--sparsities 0.5,0.65] [--out DIR]

A configuration is ``method`` plus ``--override`` strings, composed exactly as ``python run.py method=...
sparsity=... <overrides>`` composes it (``experiments.harness``), so every timed configuration is one the
harness can evaluate for accuracy. Default overrides: ``method.allocation=uniform`` (the greedy search on random
weights means nothing). Calibration: random token ids (the weights are random too). Dense is the same model
without gating. Single-row decode calls take the Triton kernel (``kernels.dispatch``); prefill takes PyTorch.
Timing runs with the gates' counters off; the measured sparsity comes from an eager pass over other steps.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from experiments.harness.tables import markdown_table

LLAMA3_8B = dict(hidden_size=4096, intermediate_size=14336, num_attention_heads=32, num_key_value_heads=8,
                 vocab_size=128256, rms_norm_eps=1e-5, rope_theta=500000.0)


def build_model(layers: int, device: str, dtype: torch.dtype, seed: int = 0, shape: dict | None = None):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**(shape or LLAMA3_8B), num_hidden_layers=layers, max_position_embeddings=4096,
                         tie_word_embeddings=False)
    torch.manual_seed(seed)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(prev)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)  # non-trivial scales (WINA's transform folds them)
            else:
                p.normal_(0.0, 0.02)
    return model.eval()


class Decoder:
    """Static-cache decode of one sequence; ``step()`` advances one token (graph-capturable)."""

    def __init__(self, model, prompt: torch.Tensor, max_len: int) -> None:
        from transformers import StaticCache

        self.model = model
        dev = prompt.device
        self.cache = StaticCache(config=model.config, max_batch_size=1, max_cache_len=max_len, device=dev,
                                 dtype=next(model.parameters()).dtype)
        n = prompt.shape[1]
        with torch.no_grad():
            out = model(prompt, past_key_values=self.cache, cache_position=torch.arange(n, device=dev), use_cache=True)
        self.ids = out.logits[:, -1:].argmax(-1)
        self.pos = torch.tensor([n], device=dev)

    @torch.no_grad()
    def step(self) -> None:
        out = self.model(self.ids, past_key_values=self.cache, cache_position=self.pos,
                         position_ids=self.pos.unsqueeze(0), use_cache=True)
        self.ids.copy_(out.logits[:, -1:].argmax(-1))
        self.pos.add_(1)


def time_decode(model, prompt, steps: int, graphs: bool, warmup: int = 3) -> float:
    """Seconds per decode step (median over repeats of ``steps`` graph replays, or eager steps)."""
    dec = Decoder(model, prompt, prompt.shape[1] + warmup + steps * 6 + 8)
    for _ in range(warmup):
        dec.step()
    run = dec.step
    if graphs:
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            dec.step()
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            dec.step()
        run = graph.replay
    sync = torch.cuda.synchronize if prompt.is_cuda else (lambda: None)
    times = []
    for _ in range(5):
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            run()
        sync()
        times.append((time.perf_counter() - t0) / steps)
    return statistics.median(times)


def measured_sparsity(model, sp, prompt, steps: int) -> float:
    dec = Decoder(model, prompt, prompt.shape[1] + steps + 2)
    sp.set_counting(True)
    sp.reset_counts()
    for _ in range(steps):
        dec.step()
    value = sp.measured(model).overall
    sp.set_counting(False)
    return value


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--methods", default="teal,wina", help="options of conf/method (comma-separated)")
    ap.add_argument("--sparsities", default="0.5,0.65")
    ap.add_argument("--override", action="append", default=None,
                    help="a run.py override applied to every method (repeatable); default method.allocation=uniform")
    ap.add_argument("--steps", type=int, default=64, help="decode steps per timed repeat")
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--no-graphs", action="store_true")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", default=None, help="folder for bench_decode.md (default: print only)")
    args = ap.parse_args(argv)
    from experiments.harness.sparsity import compose_method
    from wina import sparsify_

    overrides = args.override if args.override is not None else ["method.allocation=uniform"]
    dev, dtype = torch.device(args.device), torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    graphs = dev.type == "cuda" and not args.no_graphs
    gen = torch.Generator().manual_seed(1)
    prompt = torch.randint(0, LLAMA3_8B["vocab_size"], (1, args.prompt), generator=gen).to(dev)
    calib = torch.randint(0, LLAMA3_8B["vocab_size"], (8, 128), generator=gen)

    rows = []
    model = build_model(args.layers, args.device, dtype)
    dense = time_decode(model, prompt, args.steps, graphs)
    rows.append(["dense", 0.0, "-", "-", 1 / dense, 1.0])
    print(f"dense: {1 / dense:.1f} tok/s", flush=True)
    for method in args.methods.split(","):
        for s in (float(v) for v in args.sparsities.split(",")):
            del model
            torch.cuda.empty_cache() if dev.type == "cuda" else None
            model = build_model(args.layers, args.device, dtype)
            cfg, calibration, label = compose_method(method, s, overrides)
            sp = sparsify_(model, cfg, calib, calibration=calibration)
            measured = measured_sparsity(model, sp, prompt, 16)
            t = time_decode(model, prompt, args.steps, graphs)
            rows.append([label, s, " ".join(overrides), measured, 1 / t, dense / t])
            print(f"{label} s={s}: measured {measured:.3f}, {1 / t:.1f} tok/s, {dense / t:.2f}x dense", flush=True)
    device = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    table = markdown_table(["config", "target", "overrides", "measured sparsity", "tokens/s", "speed-up"], rows, ".3f")
    text = (f"# Decode, Llama-3-8B shapes ({args.layers} layers), random bf16 weights, batch 1\n\n"
            f"Device: {device}; torch {torch.__version__}; CUDA graphs: {graphs}; {args.steps} steps per repeat, "
            f"median of 5; prompt {args.prompt} tokens.\n\n"
            f"Command: `python -m experiments.bench.decode {' '.join(sys.argv[1:] if argv is None else argv)}`\n\n"
            f"{table}\n")
    print(text)
    if args.out:
        from pathlib import Path

        from wina.atomic import atomic_file

        with atomic_file(Path(args.out) / f"bench_decode_L{args.layers}.md") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
