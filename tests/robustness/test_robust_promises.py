"""The "What instrec promises" page (docs/promises.md) names, for each promise, a mechanism and a
test: every one of them must exist, so the promises cannot drift from the code."""
from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _section() -> str:
    text = (REPO / "docs" / "promises.md").read_text(encoding="utf-8")
    start = text.index("## The promises and what keeps them")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def _resolve(dotted: str):
    """Import the longest module prefix of ``dotted`` and walk the attributes after it."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:n]))
        except ImportError:
            continue
        for name in parts[n:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(dotted)


def test_every_promise_names_a_mechanism_and_a_test():
    bullets = re.split(r"\n- ", _section())[1:]
    assert len(bullets) == 3
    for bullet in bullets:
        assert re.search(r"`instrec\.[\w.]+`", bullet) and re.search(r"`tests/[\w/]+\.py::\w+`", bullet), bullet


def test_every_named_mechanism_exists():
    names = re.findall(r"`(instrec\.[\w.]+)`", _section())
    assert len(names) >= 12
    for name in names:
        assert callable(_resolve(name)), name


def test_every_named_test_exists():
    refs = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", _section())
    assert len(refs) >= 15
    for path, name in refs:
        tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
        defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert name in defined, f"{path}::{name}"
