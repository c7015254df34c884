"""Methods, found by the type of their frozen config (torchao's ``quantize_`` style).

A method module defines a ``SparsityConfig`` subclass and a ``Method`` subclass decorated with ``@register``;
importing the module registers it. The engine (``wina.api``) imports no method: whoever builds configs (the
harness, a user's script) imports the modules it wants, e.g. ``import wina`` (WINA) and ``import baselines.teal``.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
import torch.nn as nn

from wina.config import SparsityConfig
from wina.errors import SparsityError
from wina.gated import Gate
from wina.targets import Target


class Method:
    """One sparsity method: which targets it gates, what it calibrates, how it scores channels."""

    name: ClassVar[str]
    config_cls: ClassVar[type[SparsityConfig]]
    gates_activations: ClassVar[bool] = False  # CATS: gate the MLP activation instead of projection inputs

    def __init__(self, config: SparsityConfig) -> None:
        self.config = config

    @property
    def needs_samples(self) -> bool:
        """Calibration activations are needed for threshold masks (quantiles of the score)."""
        return self.config.mask == "threshold"

    def prepare_(self, model: nn.Module, targets: list[Target]) -> dict:
        """Change the model before gating (e.g. WINA's transform); returns facts for the record. Replace modules
        and rebind tensors (``p.data = new``), never write into the model's tensors in place: ``restore_``
        puts the dense model back from references to what it held (``wina.api.DenseState``)."""
        return {}

    def make_gate(self, target: Target, sample: torch.Tensor | None) -> Gate:
        raise NotImplementedError

    def uniform_levels(self, targets: list[Target], sparsity: float, params: dict[str, int]) -> dict[str, float]:
        return {t.key: sparsity for t in targets}

    def calibration_fields(self) -> dict:
        """Config fields that change calibration results. The target, the token policy, the kernel choice and the
        cap on greedy targets do not (samples and greedy curves come from every position of the dense model; a
        greedy curve is made up to the target and extended by a sparser job): one calibration per sweep."""
        skip = ("sparsity", "dense_prefix", "dense_prefix_rounding", "kernel", "greedy_max")
        return {k: v for k, v in dataclasses.asdict(self.config).items() if k not in skip}


_BY_CONFIG: dict[type[SparsityConfig], type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make ``cls`` the method for configs of type ``cls.config_cls``."""
    if cls.config_cls in _BY_CONFIG or cls.name in names():
        raise SparsityError(f"method {cls.name!r} ({cls.config_cls.__name__}) is registered twice")
    _BY_CONFIG[cls.config_cls] = cls
    return cls


def names() -> list[str]:
    return sorted(m.name for m in _BY_CONFIG.values())


def method_for(config: SparsityConfig) -> Method:
    cls = _BY_CONFIG.get(type(config))
    if cls is None:
        raise SparsityError(f"no method is registered for {type(config).__name__}; import its module first "
                            f"(registered: {', '.join(names()) or 'none'})")
    return cls(config)


def config_class(name: str) -> type[SparsityConfig]:
    for cls in _BY_CONFIG.values():
        if cls.name == name:
            return cls.config_cls
    raise SparsityError(f"unknown method {name!r}; accepted: dense, {', '.join(names())}")


def build_config(name: str, fields: dict) -> SparsityConfig:
    """The checked, frozen config of the registered method ``name`` from plain ``fields``."""
    cls = config_class(name)
    known = {f.name for f in dataclasses.fields(cls)}
    bad = sorted(set(fields) - known)
    if bad:
        raise SparsityError(f"method {name} has no option {bad[0]!r}; accepted: {', '.join(sorted(known))}")
    cfg = cls(**fields)
    cfg.check()
    return cfg
