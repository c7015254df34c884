"""The CUDA C++ single-row gated GEMV (``kernels/gated_gemv.cu``): ``y = (x * (|x| * scale > t)) @ w_t + bias``.

Built on first use with ``nvcc`` for the device's own architecture (``-gencode arch=compute_XY,code=sm_XY``) into a
cache folder (``$WINA_KERNEL_CACHE``, else ``~/.cache/wina-harness/kernels``), keyed by the source's sha256, and
called through ctypes on the current stream: CUDA-graph capture records it like any other launch. No torch headers
are compiled (a build takes seconds). ``available()`` says whether it can run here (a CUDA device and ``nvcc``);
everything else in the harness works without it.

Same function as ``kernels.gated_gemv.gated_linear`` for one row (the gate in fp32, fp32 accumulation, the split-K
partials summed in a fixed order by the last block of each column tile): deterministic, bitwise repeatable.
Takes fp16/bf16 ``x`` with one row, ``w_t`` [in, out] contiguous in x's dtype with ``out % 8 == 0`` and 16-byte
aligned rows (``fits``); the threshold as ``gated_linear`` takes it (a number, a 1-element tensor, per channel, or
broadcastable to ``x``).
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("gated_gemv.cu")
TUNED_PATH = Path(__file__).with_name("cuda_tuned.json")  # {"<out>x<in>": CudaConfig fields}: an H100 sweep
DTYPE_CODES = {torch.float16: 0, torch.bfloat16: 1}
TILE = 256  # output columns per block (the .cu file's TILE)


@dataclass(frozen=True)
class CudaConfig:
    warps: int = 8    # warps per block (4 or 8); they share one 256-column tile
    unroll: int = 8   # kept rows whose loads a lane issues before the first use (4 or 8)
    rows: int = 128   # input channels per warp (a multiple of 32): the k split is warps * rows channels
    pipe: bool = True  # issue the next `unroll` rows' loads before this batch's multiply-adds

    @property
    def name(self) -> str:
        """Short label for tables and logs, e.g. 'w8u4r64p'."""
        return f"w{self.warps}u{self.unroll}r{self.rows}{'p' if self.pipe else ''}"


def cache_dir() -> Path:
    env = os.environ.get("WINA_KERNEL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "wina-harness" / "kernels"


def nvcc() -> str | None:
    found = shutil.which("nvcc")
    if found:
        return found
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or "/usr/local/cuda"
    cand = Path(home, "bin", "nvcc")
    return str(cand) if cand.is_file() else None


def build(arch: str, source: Path = SOURCE, out_dir: Path | None = None) -> Path:
    """Compile ``source`` for ``arch`` (e.g. '90') into a shared library; reuse a cached build of the same source."""
    compiler = nvcc()
    if compiler is None:
        raise RuntimeError("nvcc not found (PATH, $CUDA_HOME/bin): the CUDA gated GEMV cannot be built")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    out_dir = out_dir or cache_dir()
    lib = out_dir / f"gated_gemv_{digest}_sm{arch}.so"
    if lib.is_file():
        return lib
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:  # build aside, then rename: a killed build leaves no lib
        part = Path(tmp, lib.name)
        cmd = [compiler, "-O3", "-std=c++17", "-shared", "-Xcompiler", "-fPIC", "-lineinfo",
               f"-gencode=arch=compute_{arch},code=sm_{arch}", "-o", str(part), str(source)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"nvcc failed ({' '.join(cmd)}):\n{res.stderr[-4000:]}")
        os.replace(part, lib)
    return lib


@functools.lru_cache(maxsize=4)
def _library(arch: str) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(build(arch)))
    fn = lib.wina_gated_gemv
    p, i, f, ll = ctypes.c_void_p, ctypes.c_int, ctypes.c_float, ctypes.c_longlong
    fn.argtypes = [i, i, i, i, i, i, p, p, p, f, ll, p, i, p, p, p, p, i, i, p]
    fn.restype = i
    lib.wina_gated_gemv_splits.argtypes = [i, i, i]
    lib.wina_gated_gemv_splits.restype = i
    return lib


@functools.lru_cache(maxsize=8)
def _arch(device: torch.device) -> str:
    major, minor = torch.cuda.get_device_capability(device)
    return f"{major}{minor}"


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """A CUDA device and nvcc: the CUDA path can be built and run here."""
    return torch.cuda.is_available() and nvcc() is not None


@functools.lru_cache(maxsize=4)
def usable(device: torch.device) -> bool:
    """``available()`` and the library builds and loads for ``device`` (built here on the first call); a failed build
    warns once and leaves the callers on the Triton kernel."""
    if not available():
        return False
    try:
        _library(_arch(device))
        return True
    except (RuntimeError, OSError) as exc:
        warnings.warn(f"the CUDA gated GEMV is not used: {exc}", RuntimeWarning, stacklevel=2)
        return False


@functools.lru_cache(maxsize=1)
def tuned() -> dict:
    """The measured launch table (``experiments.bench.cuda_gemv --tune``): shape '<out>x<in>' -> CudaConfig."""
    table = json.loads(TUNED_PATH.read_text()) if TUNED_PATH.is_file() else {}
    return {shape: CudaConfig(**fields) for shape, fields in table.items()}


def pick_config(out_features: int, in_features: int, sms: int) -> CudaConfig:
    """The measured config of this shape, else the rule that reproduces the measured table: 8 warps, 4 rows in
    flight pipelined, and the most channels per warp (128, 64, 32) that still gives at least two blocks per
    multiprocessor (``sms``)."""
    hit = tuned().get(f"{out_features}x{in_features}")
    if hit is not None:
        return hit
    tiles = -(-out_features // TILE)
    for rows in (128, 64):
        if tiles * -(-in_features // (8 * rows)) >= 2 * sms:
            return CudaConfig(warps=8, unroll=4, rows=rows, pipe=True)
    return CudaConfig(warps=8, unroll=4, rows=32, pipe=True)


def fits(x: torch.Tensor, w_t: torch.Tensor) -> bool:
    """Shapes and layouts the CUDA kernel takes: one fp16/bf16 row on CUDA, w_t [in, out] contiguous in x's dtype,
    out a multiple of 8 and the rows 16-byte aligned."""
    K = x.shape[-1]
    return (x.is_cuda and x.dtype in DTYPE_CODES and w_t.dtype == x.dtype and w_t.dim() == 2
            and w_t.shape[0] == K and w_t.is_contiguous() and w_t.shape[1] % 8 == 0
            and w_t.data_ptr() % 16 == 0 and x.numel() == K)


_TICKETS: dict = {}


def _tickets(device: torch.device, tiles: int) -> torch.Tensor:
    """Zeroed per-tile ticket counters, kept across calls (each call leaves them at zero). While a CUDA graph is
    captured before any exist, a zeroed buffer of this call (its zeroing is captured with it)."""
    key = device.index
    buf = _TICKETS.get(key)
    if buf is not None and buf.numel() >= tiles:
        return buf
    buf = torch.zeros(max(tiles, 1 << 12), device=device, dtype=torch.int32)
    if not torch.cuda.is_current_stream_capturing():
        _TICKETS[key] = buf
    return buf


def _threshold(threshold, K: int, device: torch.device):
    """-> (fp32 tensor or None, value, stride over channels) for one row."""
    if not torch.is_tensor(threshold):
        return None, float(threshold), 0
    t = threshold.to(device=device, dtype=torch.float32)
    if t.numel() == 1:
        return t.reshape(1), 0.0, 0
    if t.shape[-1] != K or t.numel() != K:
        raise ValueError(f"threshold of shape {tuple(threshold.shape)} is neither one value nor one per channel "
                         f"of a {K}-channel row")
    t = t.reshape(K)
    return t, 0.0, t.stride(0)


def gated_linear_cuda(x: torch.Tensor, w_t: torch.Tensor, threshold, bias: torch.Tensor | None = None,
                      scale: torch.Tensor | None = None, *, config: CudaConfig | None = None) -> torch.Tensor:
    """``F.linear(x * (|x| * scale > threshold), w_t.T, bias)`` for one row ``x`` [..., in]; see the module."""
    if not fits(x, w_t):
        raise ValueError(f"the CUDA gated GEMV takes one fp16/bf16 CUDA row and w_t [in, out] contiguous with "
                         f"out % 8 == 0 in its dtype; got x {tuple(x.shape)} {x.dtype}, w_t {tuple(w_t.shape)} "
                         f"{w_t.dtype}")
    cfg = config or CudaConfig()
    K, N = w_t.shape
    dev = x.device
    lib = _library(_arch(dev))
    x1 = x.reshape(K).contiguous()
    t, t_val, t_stride = _threshold(threshold, K, dev)
    scale_f32 = 1
    if scale is not None:
        if scale.dtype not in (torch.float32, x.dtype):
            scale = scale.float()
        scale_f32 = int(scale.dtype == torch.float32)
        scale = scale.reshape(K).contiguous()
    if bias is not None:
        bias = bias.to(x.dtype).contiguous()
    splits = lib.wina_gated_gemv_splits(cfg.warps, cfg.rows, K)
    partial = torch.empty((splits, N) if splits > 1 else (1,), device=dev, dtype=torch.float32)
    tickets = _tickets(dev, -(-N // TILE))
    y = torch.empty(N, device=dev, dtype=x.dtype)
    err = lib.wina_gated_gemv(
        dev.index if dev.index is not None else torch.cuda.current_device(), DTYPE_CODES[x.dtype],
        cfg.warps, cfg.unroll, int(cfg.pipe), cfg.rows, x1.data_ptr(), w_t.data_ptr(),
        t.data_ptr() if t is not None else None, t_val, t_stride,
        scale.data_ptr() if scale is not None else None, scale_f32,
        bias.data_ptr() if bias is not None else None, partial.data_ptr(), tickets.data_ptr(), y.data_ptr(),
        K, N, torch.cuda.current_stream(dev).cuda_stream)
    if err != 0:
        raise RuntimeError(f"CUDA gated GEMV launch failed: cudaError {err} (config {cfg})")
    return y.view(*x.shape[:-1], N)


__all__ = ["CudaConfig", "available", "build", "fits", "gated_linear_cuda", "pick_config", "tuned", "usable"]
