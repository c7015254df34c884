"""WINA and the shared sparsity machinery: ``sparsify_(model, config, calibration_tokens)``."""

from wina.api import NotReachable, Sparsified, SparsityConfig, build_config, method_names, sparsify_
from wina.calibrate import CalibrationConfig
from wina.method import WinaConfig

__all__ = ["sparsify_", "build_config", "method_names", "Sparsified", "SparsityConfig", "NotReachable",
           "CalibrationConfig", "WinaConfig"]
