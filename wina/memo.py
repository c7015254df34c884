"""Results computed from a model's tensors, kept for as long as those tensors are unchanged: a sweep's later jobs
reuse what its first job computed (R-Sparse's SVD factors, WINA's rotations) instead of computing it again.

A tensor is known by its data (address, shape, strides, dtype, device) and its version counter. An entry holds a
reference to each input tensor, so that storage cannot be freed and reused by another tensor while the entry lives,
and an in-place change bumps the version. Methods rebind ``.data`` instead of writing into weights (``sparsify_``'s
contract), so a transformed weight is another storage and ``restore_`` brings back the one an entry knows. Least
recently used entries go beyond ``max_bytes`` (what the entries hold: their results and the inputs they pin)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import torch

Results = tuple[torch.Tensor, ...]


class TensorMemo:
    def __init__(self, max_bytes: int = 2 << 30) -> None:
        self.max_bytes = max_bytes
        self.entries: OrderedDict[tuple, tuple[Results, Results]] = OrderedDict()  # key -> (inputs, results)

    @staticmethod
    def key(t: torch.Tensor) -> tuple:
        return t.data_ptr(), tuple(t.shape), t.stride(), t.dtype, t.device, t._version

    def get(self, name: str, inputs: Results, compute: Callable[[], Results]) -> Results:
        """``compute()``'s results for ``inputs`` (computed once while the inputs stay the same); ``name`` says
        what is computed from them."""
        key = (name, *map(self.key, inputs))
        if key in self.entries:
            self.entries.move_to_end(key)
            return self.entries[key][1]
        results = tuple(compute())
        self.entries[key] = (tuple(t.detach() for t in inputs), results)
        while len(self.entries) > 1 and self.nbytes() > self.max_bytes:
            self.entries.popitem(last=False)
        return results

    def nbytes(self) -> int:
        return sum(t.nbytes for inputs, results in self.entries.values() for t in (*inputs, *results))


MEMO = TensorMemo()  # the process's memo, shared by the methods
