"""The command line: check everything a command line asks for before Hydra starts any job, then run it.

``preflight`` composes every job of a ``--multirun`` (Hydra's own sweep expansion, the sweep a preset defines in
``hydra.sweeper.params`` included), so a bad value anywhere in a sweep stops it before the first job, with one
``error:`` line naming the value and what is accepted: an unknown group option, a key the schema does not declare,
a wrong type, a value out of range.
"""

from __future__ import annotations

import itertools
import re
import sys
from pathlib import Path
from typing import Callable

from omegaconf import DictConfig, OmegaConf

from experiments.harness.errors import EXIT_CODE, USER_ERRORS, HarnessError
from experiments.harness.schema import CONF_DIR, compose_config, declared_keys, register_schemas, unknown_keys

_GROUP_CHOICE = re.compile(r"^([a-z_]+)=(.+)$")
_PASS_THROUGH = {"--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c", "--shell-completion", "-sc",
                 "--version", "--resolve", "--package", "-p"}
_WITH_VALUE = {"--config-name", "-cn", "--config-path", "-cp", "--config-dir", "-cd", "--experimental-rerun"}


def group_choices(conf_dir: Path) -> dict[str, list[str]]:
    """The groups a run chooses an option of with ``group=option`` (those config.yaml's defaults name), and their
    options; not ``experiment/`` (presets, added with ``+experiment=``) nor ``hydra/`` (Hydra's own groups)."""
    defaults = OmegaConf.load(Path(conf_dir) / "config.yaml").defaults
    groups = [g for entry in defaults if isinstance(entry, DictConfig) for g in entry]
    return {g: sorted(p.stem for p in (Path(conf_dir) / g).glob("*.yaml")) for g in sorted(groups)}


def bad_group_choice(overrides: list[str], conf_dir: Path) -> str | None:
    """The error line for the first ``group=value`` override naming an unknown option (comma sweeps included)."""
    groups = group_choices(conf_dir)
    for arg in overrides:
        m = _GROUP_CHOICE.match(arg)
        if not m or m.group(1) not in groups:
            continue
        group = m.group(1)
        for v in m.group(2).split(","):
            if v not in groups[group]:
                hint = " (a local model directory: model=hf model.id=DIR)" if group == "model" and "/" in v else ""
                return f"unknown {group} {v!r}; accepted: {', '.join(groups[group])}{hint}"
    return None


def _split_argv(argv: list[str]) -> tuple[list[str], bool, str | None, bool]:
    """-> (overrides, multirun, config name, pass through to Hydra untouched)."""
    overrides, multirun, name, skip = [], False, None, False
    it = iter(argv)
    for a in it:
        flag = a.split("=", 1)[0]
        if a in ("-m", "--multirun"):
            multirun = True
        elif flag in _WITH_VALUE:
            value = a.split("=", 1)[1] if "=" in a else next(it, None)
            if flag in ("--config-name", "-cn"):
                name = value
        elif a in _PASS_THROUGH or flag in _PASS_THROUGH:
            skip = True
        elif not a.startswith("-"):
            overrides.append(a)
    return overrides, multirun, name, skip


class _UnsweptConfigError(Exception):
    """What a multirun composes before any job (the defaults and the overrides it does not sweep) does not compose."""

    def __init__(self, base: list[str]):
        super().__init__(base)
        self.base = base


def _config_sweep(base: list[str], config_name: str) -> list[str]:
    """The sweep the config composed from ``base`` defines (``hydra.sweeper.params``: an experiment preset's grid),
    as overrides in the order Hydra's BasicSweeper reads them."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        sweeper = compose(config_name, base, return_hydra_config=True).hydra.sweeper
    return [f"{key}={value}" for key, value in (sweeper.get("params") or {}).items()]


def _jobs(overrides: list[str], multirun: bool, config_name: str) -> list[list[str]]:
    """Every job's overrides, expanded as Hydra's BasicSweeper does: the config's own sweep first, then the command
    line, so that the command line wins for a key both name (``method=wina,teal`` replaces a preset's methods)."""
    if not multirun:
        return [overrides]
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    base = [o for o, p in zip(overrides, parser.parse_overrides(overrides)) if not p.is_sweep_override()]
    try:  # Hydra composes the defaults with the overrides it does not sweep before any job
        config_sweep = _config_sweep(base, config_name)
    except Exception as exc:  # noqa: BLE001 - reported by preflight
        raise _UnsweptConfigError(base) from exc
    parsed = parser.parse_overrides([*config_sweep, *overrides])
    return list(itertools.chain.from_iterable(BasicSweeper.split_arguments(parsed, None)))


def _causes(exc: BaseException):
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


def _value_of(key: str, job: list[str]) -> str | None:
    for o in job:
        k, _, v = o.lstrip("+~").partition("=")
        if k == key:
            return v
    return None


def _describe(exc: Exception, job: list[str], config_name: str) -> str:
    """One line for a composition failure, naming the key and the value."""
    from hydra.errors import MissingConfigException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

    for e in _causes(exc):
        key = getattr(e, "full_key", None)
        if isinstance(e, (ConfigAttributeError, ConfigKeyError)) and key:
            return _unknown_key(key, job, config_name)
        if isinstance(e, ValidationError) and key:
            value, first = _value_of(key, job), str(e).splitlines()[0]
            if "is not a ListConfig" in first:
                return f"{key}={value}: a list is expected, e.g. {key}=[{value}]"
            return f"{key}={value}: {first}"
        if isinstance(e, MissingConfigException):
            accepted = f"; accepted: {', '.join(e.options)}" if e.options else ""
            return str(e).splitlines()[0] + accepted
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _unknown_key(key: str, job: list[str], config_name: str) -> str:
    groups = [o for o in job if _GROUP_CHOICE.match(o) and "." not in o.split("=")[0] and not o.startswith("hydra")]
    try:
        accepted = declared_keys(compose_config(groups, config_name), key)
    except Exception:  # noqa: BLE001 - only for the hint
        accepted = []
    hint = f"; accepted: {', '.join(accepted)}" if accepted else ""
    return f"unknown key {key!r}{hint}"


def preflight(argv: list[str], check: Callable, default_config: str = "config",
              composed: list | None = None) -> str | None:
    """None if every job the command line asks for composes and passes ``check(cfg)``, else the error line."""
    overrides, multirun, name, skip = _split_argv(argv)
    if skip:
        return None
    config_name = name or default_config
    if (msg := bad_group_choice(overrides, CONF_DIR)) is not None:
        return msg
    register_schemas()
    try:
        jobs = _jobs(overrides, multirun, config_name)
    except _UnsweptConfigError as exc:
        msg = _describe(exc.__cause__, exc.base, config_name)
        if msg.startswith("unknown key"):
            msg += (" (a --multirun first applies the overrides it does not sweep to the default config: give a key "
                    "the default lacks as ++key=value)")
        return msg
    except Exception as exc:  # noqa: BLE001 - Hydra's parser errors are the user's input
        return _describe(exc, overrides, config_name)
    hub_checked = False
    for job in jobs:
        try:
            cfg = compose_config(job, config_name)
        except Exception as exc:  # noqa: BLE001 - composition errors are the user's input
            return _describe(exc, job, config_name)
        if bad := [k for k in unknown_keys(cfg) if not _dense_method_option(cfg, k)]:
            return _unknown_key(bad[0], job, config_name)
        try:
            check(cfg, probe_hub=not hub_checked)
            hub_checked = True
        except USER_ERRORS as exc:
            return str(exc)
        if composed is not None:
            composed.append(cfg)
    return None


def _dense_method_option(cfg, key: str) -> bool:
    """A method option given to every job of a sweep (``++method.allocation=uniform``) means nothing to dense."""
    return cfg.method.name == "dense" and key.startswith("method.")


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_CODE)


def run_main(argv: list[str] | None = None) -> None:
    """``python run.py ...``: preflight, then Hydra runs the job(s)."""
    import hydra

    from experiments.harness.pipeline import check_config, run_experiment
    from experiments.harness.sweep import progress

    argv = sys.argv[1:] if argv is None else argv
    jobs: list = []
    if (msg := preflight(argv, check_config, composed=jobs)) is not None:
        fail(msg)
    if _split_argv(argv)[1]:  # a --multirun: say what the store already holds; each job reports progress
        from experiments.harness.sweep import plan

        plan(jobs)

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
    def main(cfg) -> None:
        try:
            run_experiment(cfg)
            progress()
        except USER_ERRORS as exc:
            fail(str(exc))

    main()


__all__ = ["preflight", "run_main", "bad_group_choice", "group_choices", "fail", "HarnessError"]
