"""The package layout: data flows down the imports, each file name and model name has one owner."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from instrec import run
from instrec.data import layout
from instrec.models import MODEL_NAMES

SRC = Path(__file__).resolve().parents[1] / "src" / "instrec"

#: Packages from the bottom up; a module may import only from lower ranks or its own package.
RANKS = {
    "instrec._io": 0, "instrec._jsonread": 0.2, "instrec._version": 0, "instrec.classes": 0.5, "instrec.runinfo": 0.5, "instrec.parallel": 0.5, "instrec.fetch": 0.5, "instrec.integrity": 0.75,
    "instrec.device": 0.5,
    "instrec.features": 1, "instrec.models": 2, "instrec.data": 3, "instrec.run_schema": 3.5, "instrec.run": 4, "instrec.resume": 4.5, "instrec.evaluation": 5,
    "instrec.synth": 6, "instrec.training": 6, "instrec.tagging": 7, "instrec.pipelines": 8,
    "instrec": 9, "instrec.cli": 10,  # the package root only re-exports (lazily) what users call
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, ast.Module]:
    return {_module_name(p): ast.parse(p.read_text(), str(p)) for p in sorted(SRC.rglob("*.py"))}


def _imports(tree: ast.Module) -> set[str]:
    """instrec modules ``tree`` imports; ``from package import module`` counts as the module."""
    known = {_module_name(p) for p in SRC.rglob("*.py")}
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("instrec"):
            subs = {f"{node.module}.{a.name}" for a in node.names} & known
            out.update(subs or {node.module})
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("instrec"))
    return out


def _package(module: str) -> str:
    """The ranked unit a module belongs to (longest prefix in RANKS)."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in RANKS:
            return ".".join(parts[:n])
    raise AssertionError(f"{module} belongs to no ranked package; add it to RANKS")


def test_every_import_runs_down_the_layers():
    upward = []
    for module, tree in _modules().items():
        mine = _package(module)
        for target in _imports(tree):
            theirs = _package(target)
            if theirs != mine and RANKS[theirs] >= RANKS[mine]:
                upward.append(f"{module} -> {target}")
    assert not upward, "imports that do not run down the layers:\n" + "\n".join(sorted(upward))


def test_no_import_cycle():
    graph = {m: {t for t in _imports(tree) if t != m} for m, tree in _modules().items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in graph.get(m, ()):
            if state.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def _owned_names(module) -> set[str]:
    return {v for k, v in vars(module).items() if k.isupper() and isinstance(v, str) and re.fullmatch(r"[\w.-]+", v)}


@pytest.mark.parametrize("owner", [run, layout], ids=["run", "data.layout"])
def test_file_names_are_spelled_only_by_their_owner(owner):
    names = _owned_names(owner)
    assert {"config.json", "metrics.json"} <= names or {"frontend.json", "strong-labels.csv"} <= names
    owner_file = Path(owner.__file__).resolve()
    strays = []
    for path in SRC.rglob("*.py"):
        if path.resolve() == owner_file:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                strays.append(f"{path.relative_to(SRC)}:{node.lineno}: {node.value!r}")
    assert not strays, "file names spelled outside their owner:\n" + "\n".join(strays)


def test_no_model_is_special_cased_outside_models():
    found = []
    for path in SRC.rglob("*.py"):
        if path.relative_to(SRC).parts[0] == "models":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                for side in (node.left, *node.comparators):
                    consts = [side] if isinstance(side, ast.Constant) else getattr(side, "elts", [])
                    if any(isinstance(c, ast.Constant) and c.value in MODEL_NAMES for c in consts):
                        found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not found, "model names compared outside instrec.models:\n" + "\n".join(found)


def test_the_version_is_written_once():
    from instrec._version import __version__

    spelled = [p for p in SRC.rglob("*.py") if p.name != "_version.py"
               and any(isinstance(n, ast.Constant) and n.value in (__version__, f"instrec {__version__}")
                       for n in ast.walk(ast.parse(p.read_text())))]
    assert not spelled, f"version {__version__} spelled outside _version.py: {spelled}"
    pyproject = (SRC.parents[1] / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and not re.search(r'^version = "', pyproject, re.M)
