"""Catch an unknown config-group choice (``model=foo``) before Hydra does, with one clear line."""

from __future__ import annotations

import re
from pathlib import Path

_SIMPLE = re.compile(r"^([a-z_]+)=([A-Za-z0-9_.\-,]+)$")


def group_choices(conf_dir: Path) -> dict[str, list[str]]:
    return {d.name: sorted(p.stem for p in d.glob("*.yaml")) for d in sorted(Path(conf_dir).iterdir()) if d.is_dir()}


def bad_group_choice(argv: list[str], conf_dir: Path) -> str | None:
    """The error line for the first ``group=value`` override naming an unknown option, else None.

    Only plain values and comma sweeps are checked; anything fancier is left to Hydra.
    """
    groups = group_choices(conf_dir)
    for arg in argv:
        m = _SIMPLE.match(arg)
        if not m or m.group(1) not in groups:
            continue
        group, values = m.group(1), m.group(2).split(",")
        for v in values:
            if v not in groups[group]:
                return f"unknown {group} {v!r}; accepted: {', '.join(groups[group])}"
    return None
