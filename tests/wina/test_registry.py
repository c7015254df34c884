"""Methods are found by their config type; the library stands alone (no harness, no baselines, no cycles)."""

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from wina import SparsityConfig, SparsityError, WinaConfig, registry
from wina.registry import Method, register

ROOT = Path(__file__).resolve().parents[2]


def test_methods_are_found_by_config_type():
    assert type(registry.method_for(WinaConfig(sparsity=0.5))).name == "wina"
    assert registry.config_class("teal").__name__ == "TealConfig"

    @dataclass(frozen=True)
    class Unregistered(SparsityConfig):
        pass

    with pytest.raises(SparsityError, match="no method is registered for Unregistered"):
        registry.method_for(Unregistered())
    with pytest.raises(SparsityError, match="unknown method 'magic'; accepted: dense, cats, rsparse, teal, wina"):
        registry.config_class("magic")


def test_registering_a_name_or_config_twice_is_an_error():
    class Again(Method):
        name = "wina"
        config_cls = SparsityConfig

    with pytest.raises(SparsityError, match="'wina' .* registered twice"):
        register(Again)

    class SameConfig(Method):
        name = "other"
        config_cls = WinaConfig

    with pytest.raises(SparsityError, match="registered twice"):
        register(SameConfig)


def test_unknown_option_is_refused():
    with pytest.raises(SparsityError, match="method wina has no option 'alocation'"):
        registry.build_config("wina", {"sparsity": 0.5, "alocation": "uniform"})


def test_the_library_imports_neither_the_harness_nor_the_baselines():
    code = ("import sys, wina; bad = sorted(m for m in sys.modules if m.split('.')[0] in ('experiments', 'baselines')); "
            "print(bad); print(wina.registry.names())")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["[]", "['wina']"]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_import_cycle_in_the_library():
    mods = {f"wina.{p.stem}": p for p in (ROOT / "wina").glob("*.py") if p.stem != "__init__"}
    graph = {m: {i for i in _imports(p) if i in mods} for m, p in mods.items()}
    for layer in ("kernels", "wina", "baselines"):  # and nothing below imports what stands above it
        for p in (ROOT / layer).rglob("*.py"):
            assert not any(i.split(".")[0] == "experiments" for i in _imports(p)), p
    for p in (ROOT / "kernels").rglob("*.py"):
        assert not any(i.split(".")[0] in ("wina", "baselines") for i in _imports(p)), p
    state: dict[str, int] = {}

    def visit(m, path):
        if state.get(m) == 1:
            raise AssertionError(f"import cycle: {' -> '.join(path + [m])}")
        if state.get(m) == 2:
            return
        state[m] = 1
        for n in graph[m]:
            visit(n, path + [m])
        state[m] = 2

    for m in graph:
        visit(m, [])
