"""The sparsity library: ``sparsify_(model, config, calibration_tokens)`` for every registered method.

Importing ``wina`` registers WINA itself (``wina.wina_method``); the baselines register when their modules
are imported (``import baselines.teal``). The library imports nothing from the harness (``experiments``).
"""

from wina.api import MeasuredSparsity, Sparsified, sparsify_
from wina.calibrate import CalibrationConfig
from wina.config import SparsityConfig
from wina.errors import NotReachable, SparsityError
from wina.registry import Method, build_config, register
from wina.wina_method import WinaConfig

__all__ = ["sparsify_", "build_config", "register", "Method", "Sparsified", "MeasuredSparsity", "SparsityConfig",
           "WinaConfig", "CalibrationConfig", "NotReachable", "SparsityError"]
