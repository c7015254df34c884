"""TEAL's published sparse GEMV kernel (FasterDecoding/TEAL, ``kernels/sparse_gemv.py``), timed beside ours.

The peer is run from a checkout outside this repository (never copied into it): ``load(checkout)`` executes that
file's kernel definitions (the part above its ``compile_wrapper`` import, which registers torch custom ops and needs
``msgspec``) and returns ``gemv(x, w_t, threshold, sparsity) -> y`` with TEAL's own calling convention: ``x``
[1, 1, in], the weight column-major (``w_t.t()`` of our ``[in, out]`` copy), a scalar threshold on ``|x|``, and an
integer sparsity bin (a key of its autotuner). Batch 1 only; its output is fp16 (bf16 inputs are converted back, as
TEAL does). None when the checkout is absent.
"""
from __future__ import annotations

from pathlib import Path


def load(checkout: str | None):
    source = Path(checkout or "", "kernels", "sparse_gemv.py")
    if not checkout or not source.is_file():
        return None
    text = source.read_text()
    cut = text.find("from compile_wrapper import")
    cut = text.rfind("\nimport sys", 0, cut) if cut >= 0 else len(text)
    namespace: dict = {"__name__": "teal_sparse_gemv", "__file__": str(source)}
    exec(compile(text[:cut], str(source), "exec"), namespace)  # noqa: S102 - the peer's own published code
    kernel = namespace["splitk_sparse_gemv"]

    def gemv(x, w_t, threshold: float, sparsity: float):
        return kernel(x.view(1, 1, -1), w_t.t(), float(threshold), int(round(sparsity * 100)))

    return gemv
