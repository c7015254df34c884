"""End-to-end decode benchmark (gpt-fast style) with the gated-linear kernels.

    python experiments/bench_decode.py --out results/kernels [--layers 32] [--sparsities 0.5,0.65]

A small self-contained Llama with Llama-3-8B shapes (32 layers, d 4096, ffn 14336, 32 heads,
8 KV heads, head dim 128, vocab 128256), random bf16 weights (speed does not depend on the
values), static KV cache, batch 1.  One decode step (embedding -> 32 layers -> lm_head ->
argmax -> next token/position written on the device) is captured in a CUDA graph and replayed.

Modes: dense (F.linear, fused qkv and gate/up weights); teal (gate |x| > t, one scalar t per
projection input); wina (gate |x| * c > t, c = column norms of the (concatenated) weight).
Sparsified: q/k/v (one gated kernel over the concatenated weight), o, gate/up (concatenated),
down.  Thresholds are calibrated on the fly (quantiles over a few random decode steps).
The split-K partials of each gated kernel are summed inside the following elementwise op
(rope / residual+rmsnorm / silu*up), so sparse mode launches no extra reduction kernels.
Elementwise glue is compiled with torch.compile (inductor) unless --no-compile.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kernels.gated_gemv import gated_linear, load_tuned  # noqa: E402
from kernels.select import calibrate_threshold  # noqa: E402

DIM, FFN, NH, NKV, HD, VOCAB = 4096, 14336, 32, 8, 128, 128256
QKV = (NH + 2 * NKV) * HD
EPS = 1e-5


# ----------------------------------------------------------------------------- glue ops
def _fin(y):
    """Dense output [1, N] or split-K partials [C, 1, N] -> fp32 [1, N]."""
    return y.sum(0) if y.dim() == 3 else y.float()


def g_rms(h, w):
    hf = h.float()
    return (hf * torch.rsqrt(hf.pow(2).mean(-1, keepdim=True) + EPS) * w).to(h.dtype)


def g_add_rms(h, y, w):
    hn = (h.float() + _fin(y))
    x = hn * torch.rsqrt(hn.pow(2).mean(-1, keepdim=True) + EPS) * w
    return hn.to(h.dtype), x.to(h.dtype)


def g_rope(qkv, pos, cos_t, sin_t):
    """-> q [NH, HD] and the new k/v entry stacked as [2, NKV, 1, HD] (one cache write)."""
    y = _fin(qkv)
    q = y[:, : NH * HD].view(NH, HD)
    k = y[:, NH * HD: (NH + NKV) * HD].view(NKV, HD)
    v = y[:, (NH + NKV) * HD:].view(NKV, HD)
    cos, sin = cos_t[pos], sin_t[pos]  # [1, HD/2]

    def rot(t):
        a, b = t[:, : HD // 2], t[:, HD // 2:]
        return torch.cat([a * cos - b * sin, b * cos + a * sin], -1)

    dt = torch.bfloat16
    return rot(q).to(dt), torch.stack([rot(k), v]).to(dt).view(2, NKV, 1, HD)


def g_attn(q, kv, pos):
    """GQA attention of one query over the static cache kv [2, NKV, L, HD] (bf16 matmuls,
    fp32 softmax; positions > pos masked, as gpt-fast does)."""
    L = kv.shape[2]
    qg = q.view(NKV, NH // NKV, HD)
    s = torch.matmul(qg, kv[0].transpose(1, 2)).float() * (1.0 / math.sqrt(HD))
    valid = torch.arange(L, device=q.device) <= pos
    p = torch.softmax(s.masked_fill(~valid, float("-inf")), -1).to(q.dtype)
    o = torch.matmul(p, kv[1])
    return o.reshape(1, NH * HD)


def g_silu_mul(gu):
    y = _fin(gu)
    g, u = y[:, :FFN], y[:, FFN:]
    return (F.silu(g) * u).to(torch.bfloat16)


GLUE = dict(rms=g_rms, add_rms=g_add_rms, rope=g_rope, attn=g_attn, silu_mul=g_silu_mul)


# ----------------------------------------------------------------------------- model
class Llama:
    GROUPS = ("qkv", "o", "gu", "down")

    def __init__(self, n_layers, max_len, device="cuda", dtype=torch.bfloat16):
        g = torch.Generator(device=device).manual_seed(0)

        def rnd(*shape, std=0.02):
            return (torch.randn(*shape, generator=g, device=device) * std).to(dtype)

        self.dtype, self.max_len, self.n_layers = dtype, max_len, n_layers
        self.emb = rnd(VOCAB, DIM, std=1.0)
        self.lm_head = rnd(VOCAB, DIM)
        self.norm = torch.ones(DIM, device=device)
        self.layers = []
        for _ in range(n_layers):
            self.layers.append(dict(
                qkv=rnd(QKV, DIM), o=rnd(DIM, DIM), gu=rnd(2 * FFN, DIM), down=rnd(DIM, FFN),
                ln1=torch.ones(DIM, device=device), ln2=torch.ones(DIM, device=device)))
        self.kv = [torch.zeros(2, NKV, max_len, HD, device=device, dtype=dtype) for _ in range(n_layers)]
        inv = 1.0 / (500000.0 ** (torch.arange(0, HD, 2, device=device).float() / HD))
        ang = torch.arange(max_len, device=device).float()[:, None] * inv[None, :]
        self.cos, self.sin = ang.cos(), ang.sin()
        self.mode = "dense"
        self.sparse = {}       # (layer, group) -> dict(w_t, thr, scale)
        self.record = None     # dict to collect linear inputs (calibration)
        self.stats = None      # dict to collect kept fractions
        self.glue = GLUE

    def prepare_sparse(self):
        for li, lay in enumerate(self.layers):
            for gname in self.GROUPS:
                w = lay[gname]
                w_t = w.t().contiguous()
                self.sparse[(li, gname)] = dict(
                    w_t=w_t, c=w_t.float().norm(dim=1),
                    thr=torch.zeros((), device=w.device, dtype=torch.float32))

    def lin(self, li, gname, x):
        w = self.layers[li][gname]
        if self.record is not None:
            self.record.setdefault((li, gname), []).append(x.detach().float())
        if self.mode == "dense":
            return F.linear(x, w)
        sp = self.sparse[(li, gname)]
        scale = sp["c"] if self.mode == "wina" else None
        if self.stats is not None:
            a = x.float().abs() * (scale if scale is not None else 1.0)
            self.stats.setdefault((li, gname), []).append((a > sp["thr"]).float().mean().item())
        return gated_linear(x, sp["w_t"], sp["thr"], scale=scale, reduce=False)

    def step(self, tok, pos):
        G = self.glue
        h = self.emb[tok]  # [1, DIM]
        x = G["rms"](h, self.layers[0]["ln1"])
        for li, lay in enumerate(self.layers):
            q, kv_new = G["rope"](self.lin(li, "qkv", x), pos, self.cos, self.sin)
            self.kv[li].index_copy_(2, pos, kv_new)
            a = G["attn"](q, self.kv[li], pos)
            h, x = G["add_rms"](h, self.lin(li, "o", a), lay["ln2"])
            act = G["silu_mul"](self.lin(li, "gu", x))
            nxt = self.layers[li + 1]["ln1"] if li + 1 < self.n_layers else self.norm
            h, x = G["add_rms"](h, self.lin(li, "down", act), nxt)
        logits = F.linear(x, self.lm_head)
        tok.copy_(torch.argmax(logits, -1))
        pos.add_(1)
        return logits

    # ---- calibration
    @torch.no_grad()
    def calibrate(self, sparsity, mode, steps, start, gen):
        self.mode, self.record = "dense", {}
        dev = self.emb.device
        tok = torch.zeros(1, dtype=torch.long, device=dev)
        pos = torch.tensor([start], dtype=torch.long, device=dev)
        for _ in range(steps):
            tok.random_(0, VOCAB, generator=gen)  # random prompt tokens (teacher forcing)
            self.step(tok, pos)
        rec, self.record = self.record, None
        for key, xs in rec.items():
            sp = self.sparse[key]
            scale = sp["c"] if mode == "wina" else None
            sp["thr"].fill_(calibrate_threshold(torch.cat(xs), scale, sparsity))

    @torch.no_grad()
    def measured_sparsity(self, steps, start):
        self.stats = {}
        dev = self.emb.device
        tok = torch.zeros(1, dtype=torch.long, device=dev)
        pos = torch.tensor([start], dtype=torch.long, device=dev)
        for _ in range(steps):
            self.step(tok, pos)
        st, self.stats = self.stats, None
        tot = num = 0.0
        for (li, gname), fr in st.items():
            nbytes = self.layers[li][gname].numel()
            num += nbytes * (1 - statistics.mean(fr))
            tot += nbytes
        return num / tot


def time_decode(model, start, n_tokens, reps=3):
    tok = torch.zeros(1, dtype=torch.long, device="cuda")
    pos = torch.tensor([start], dtype=torch.long, device="cuda")
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            model.step(tok, pos)
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        model.step(tok, pos)
    rates = []
    for _ in range(reps):
        pos.fill_(start)
        g.replay()
        torch.cuda.synchronize()
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        for _ in range(n_tokens):
            g.replay()
        e1.record()
        e1.synchronize()
        rates.append(n_tokens / (e0.elapsed_time(e1) * 1e-3))
    del g
    return statistics.median(rates)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="results/kernels")
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--sparsities", default="0.5,0.65")
    ap.add_argument("--modes", default="teal,wina")
    ap.add_argument("--tokens", type=int, default=100, help="decode steps timed per repetition")
    ap.add_argument("--max-len", type=int, default=512)
    ap.add_argument("--start", type=int, default=128, help="position of the first timed token")
    ap.add_argument("--calib-steps", type=int, default=16)
    ap.add_argument("--no-compile", action="store_true", help="eager glue ops (more kernels)")
    ap.add_argument("--tuned", default="", help="tuned_configs.json to load (else kernels/ default)")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    if args.tuned:
        print("tuned configs loaded:", sum(load_tuned(f) for f in args.tuned.split(",")))
    cmd = "python " + " ".join([os.path.relpath(__file__)] + sys.argv[1:])
    dev = torch.cuda.get_device_name()
    t0 = time.time()
    model = Llama(args.layers, args.max_len)
    compiled = False
    if not args.no_compile:
        try:
            model.glue = {k: torch.compile(f, dynamic=False, fullgraph=True) for k, f in GLUE.items()}
            compiled = True
        except Exception as e:  # noqa: BLE001
            print("torch.compile unavailable, eager glue:", repr(e)[:200])
    gen = torch.Generator(device="cuda").manual_seed(1)
    model.prepare_sparse()
    rows = []
    model.mode = "dense"
    try:
        dense_tps = time_decode(model, args.start, args.tokens)
    except Exception as e:  # noqa: BLE001
        if not compiled:
            raise
        print("compiled glue failed, falling back to eager:", repr(e)[:300])
        model.glue, compiled = GLUE, False
        dense_tps = time_decode(model, args.start, args.tokens)
    rows.append(dict(mode="dense", sparsity=0.0, measured=0.0, tok_s=round(dense_tps, 1), speedup=1.0))
    print(rows[-1], flush=True)
    for mode in args.modes.split(","):
        for s in (float(v) for v in args.sparsities.split(",")):
            model.calibrate(s, mode, args.calib_steps, 0, gen)
            model.mode = mode
            meas = model.measured_sparsity(8, args.calib_steps)
            tps = time_decode(model, args.start, args.tokens)
            rows.append(dict(mode=mode, sparsity=s, measured=round(meas, 3), tok_s=round(tps, 1),
                             speedup=round(tps / dense_tps, 3)))
            print(rows[-1], flush=True)
    head = (f"device: {dev}, torch {torch.__version__}, layers {args.layers}, batch 1, bf16, "
            f"max_len {args.max_len}, glue {'torch.compile' if compiled else 'eager'}, CUDA graph per step\n"
            f"command: {cmd}")
    md = ["# End-to-end decode (Llama-3-8B shapes, random weights)", "", head.replace("\n", "  \n"), "",
          "measured = byte-weighted fraction of skipped weight rows on fresh decode steps "
          "(thresholds calibrated on other steps).", "",
          "| mode | sparsity | measured | tokens/s | speed-up vs dense |", "|---|---|---|---|---|"]
    md += [f"| {r['mode']} | {r['sparsity']} | {r['measured']} | {r['tok_s']} | {r['speedup']} |" for r in rows]
    text = "\n".join(md) + "\n"
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"bench_decode_L{args.layers}.md"), "w") as f:
        f.write(text)
    print()
    print(text)
    print(f"total {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
