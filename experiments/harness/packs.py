"""Which log-likelihood requests share a forward: the plan of ``shared_scoring.SharedContextScorer``.

A request ``(context, continuation)`` of ``m`` tokens is scored on its input ``X = (context + continuation)
[-(max_length + 1):][:-1]`` (HFLM's truncation), whose last ``m`` positions predict the continuation. ``X`` is
split into a *shared* part ``S`` (the context as HFLM truncates it) and the request's own *tail* ``O`` (the
continuation less its last token). Requests with the same ``S`` and the same dense prefix are one *group*: its pack
is ``S`` once, then each distinct tail, every tail attending to ``S`` and to itself only and placed at the positions
it has in its own request. Every position therefore sees exactly the tokens and positions it sees when its request
is scored alone; a multiple-choice document's context is computed once instead of once per choice.

The dense prefix (the token policy's leading positions left dense) is a function of each request's own input length
``len(X)``. A group holds one prefix ``p``, and a batch only groups of one ``p``, so the gated modules keep the first
``p`` rows of every packed row dense: those are the first ``p`` positions of ``S``. Where ``p`` would reach past
``S`` into the tail, the request's whole input is its ``S`` (no tail; it shares only with identical inputs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Read:
    """One request of a pack: its index in the request list, its tail (index into ``Pack.tails``; -1: none) and the
    tokens its last ``len(targets)`` positions predict."""

    request: int
    tail: int
    targets: tuple[int, ...]


@dataclass
class Pack:
    shared: tuple[int, ...]
    prefix: int  # dense leading positions of every request in the pack
    tails: list[tuple[int, ...]] = field(default_factory=list)
    reads: list[Read] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.shared) + sum(len(t) for t in self.tails)

    def tail_start(self, tail: int) -> int:
        return len(self.shared) + sum(len(t) for t in self.tails[:tail])

    def rows(self, read: Read) -> list[int]:
        """Rows of the pack holding the request's last ``len(read.targets)`` positions."""
        tail = self.tails[read.tail] if read.tail >= 0 else ()
        own = [self.tail_start(read.tail) + j for j in range(len(tail))] if tail else []
        return (list(range(len(self.shared))) + own)[-len(read.targets):]


def split_request(context: list[int], continuation: list[int], max_length: int,
                  prefix_of: Callable[[int], int]) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """``(S, O, p)`` of one request (see the module docstring)."""
    x = (context + continuation)[-(max_length + 1):][:-1]
    p = prefix_of(len(x))
    shared_len = len(x) - (len(continuation) - 1)
    if shared_len < max(p, 1):
        shared_len = len(x)
    return tuple(x[:shared_len]), tuple(x[shared_len:]), p


def plan(requests: list[tuple[list[int], list[int]]], max_length: int, prefix_of: Callable[[int], int],
         batch_size: int) -> list[list[Pack]]:
    """Batches of packs for ``(context tokens, continuation tokens)`` requests: at most ``batch_size`` requests per
    batch (a pack is never split across batches), one dense prefix per batch, longest packs first. A pack holds at
    most ``max_length`` rows unless one request alone is longer (its group is then split into several packs)."""
    groups: dict[tuple, Pack] = {}
    tail_index: dict[tuple, dict[tuple[int, ...], int]] = {}
    packs: list[Pack] = []
    for i, (context, continuation) in enumerate(requests):
        if not context or not continuation or len(continuation) > max_length:
            raise ValueError("a log-likelihood request with an empty context or continuation, or a continuation "
                             f"longer than max_length={max_length}")
        shared, tail, p = split_request(context, continuation, max_length, prefix_of)
        key = (shared, p)
        pack = groups.get(key)
        if pack is None or (tail and tail not in tail_index[key] and len(pack) + len(tail) > max_length
                            and pack.tails):
            pack = groups[key] = Pack(shared, p)
            tail_index[key] = {}
            packs.append(pack)
        t = -1
        if tail:
            t = tail_index[key].setdefault(tail, len(pack.tails))
            if t == len(pack.tails):
                pack.tails.append(tail)
        pack.reads.append(Read(i, t, tuple(continuation)))
    packs.sort(key=lambda pk: (pk.prefix, -len(pk)))
    batches: list[list[Pack]] = []
    count = 0
    for pack in packs:
        if not batches or batches[-1][0].prefix != pack.prefix or count + len(pack.reads) > batch_size:
            batches.append([])
            count = 0
        batches[-1].append(pack)
        count += len(pack.reads)
    return batches
