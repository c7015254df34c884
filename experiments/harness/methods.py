"""Which sparsity methods the harness offers: WINA (the library's own) and every module in ``baselines/``.

The library's registry is filled by importing method modules; the harness decides to import all of them, so a
new method is one file in ``baselines/`` (plus its YAML in ``conf/method/``).
"""

from __future__ import annotations

import importlib
import pkgutil

import baselines
import wina  # noqa: F401  (registers WINA)
from wina import registry


def load_methods() -> list[str]:
    """Import every baseline module (registering its method); the registered method names."""
    for mod in pkgutil.iter_modules(baselines.__path__):
        importlib.import_module(f"baselines.{mod.name}")
    return registry.names()
