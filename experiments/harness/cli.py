"""The command line: check everything a command line asks for before Hydra starts any job, then run it.

``preflight`` composes every job of a ``--multirun`` (Hydra's own sweep expansion), so a bad value anywhere in a
sweep stops it before the first job, with one ``error:`` line naming the value and what is accepted:
an unknown group option, a key the schema does not declare, a wrong type, a value out of range.
"""

from __future__ import annotations

import itertools
import re
import sys
from pathlib import Path
from typing import Callable

from experiments.harness.errors import EXIT_CODE, USER_ERRORS, HarnessError
from experiments.harness.schema import CONF_DIR, compose_config, declared_keys, register_schemas, unknown_keys

_GROUP_CHOICE = re.compile(r"^([a-z_]+)=(.+)$")
_PASS_THROUGH = {"--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c", "--shell-completion", "-sc",
                 "--version", "--resolve", "--package", "-p"}
_WITH_VALUE = {"--config-name", "-cn", "--config-path", "-cp", "--config-dir", "-cd", "--experimental-rerun"}


def group_choices(conf_dir: Path) -> dict[str, list[str]]:
    return {d.name: sorted(p.stem for p in d.glob("*.yaml")) for d in sorted(Path(conf_dir).iterdir()) if d.is_dir()}


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


def _jobs(overrides: list[str], multirun: bool) -> tuple[list[str] | None, list[list[str]]]:
    """-> (what Hydra composes first in a multirun: the overrides that are not swept; every job's overrides)."""
    if not multirun:
        return None, [overrides]
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    base = [o for o, p in zip(overrides, parsed) if not p.is_sweep_override()]
    return base, list(itertools.chain.from_iterable(BasicSweeper.split_arguments(parsed, None)))


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
            return str(e).splitlines()[0]
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


def preflight(argv: list[str], check: Callable, default_config: str = "config") -> str | None:
    """None if every job the command line asks for composes and passes ``check(cfg)``, else the error line."""
    overrides, multirun, name, skip = _split_argv(argv)
    if skip:
        return None
    config_name = name or default_config
    if (msg := bad_group_choice(overrides, CONF_DIR)) is not None:
        return msg
    register_schemas()
    try:
        base, jobs = _jobs(overrides, multirun)
    except Exception as exc:  # noqa: BLE001 - Hydra's parser errors are the user's input
        return _describe(exc, overrides, config_name)
    if base is not None:  # Hydra composes the non-swept overrides with the defaults before any job
        try:
            compose_config(base, config_name)
        except Exception as exc:  # noqa: BLE001
            return (f"{_describe(exc, base, config_name)} (a --multirun first applies the overrides it does not "
                    f"sweep to the default config: give a key the default lacks as ++key=value)")
    hub_checked = False
    for job in jobs:
        try:
            cfg = compose_config(job, config_name)
        except Exception as exc:  # noqa: BLE001 - composition errors are the user's input
            return _describe(exc, job, config_name)
        if bad := unknown_keys(cfg):
            return _unknown_key(bad[0], job, config_name)
        try:
            check(cfg, probe_hub=not hub_checked)
            hub_checked = True
        except USER_ERRORS as exc:
            return str(exc)
    return None


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_CODE)


def run_main(argv: list[str] | None = None) -> None:
    """``python run.py ...``: preflight, then Hydra runs the job(s)."""
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from experiments.harness.pipeline import check_config, run_experiment

    argv = sys.argv[1:] if argv is None else argv
    if (msg := preflight(argv, check_config)) is not None:
        fail(msg)

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
    def main(cfg) -> None:
        try:
            run_experiment(cfg, Path(HydraConfig.get().runtime.output_dir))
        except USER_ERRORS as exc:
            fail(str(exc))

    main()


__all__ = ["preflight", "run_main", "bad_group_choice", "group_choices", "fail", "HarnessError"]
