"""The one defensive reader of every JSON and JSON Lines state file instrec reads back.

A run's ``config.json`` and resume state, the default model's config, a dataset's side files,
a catalogue job's ``job.json`` and ``manifest.jsonl``, the integrity records: all were written
by instrec, but a crash, a full disk or a person may have changed them. Reading goes through
:func:`read_json` / :func:`read_jsonl`, which bound the size (:data:`MAX_BYTES`) and the
nesting depth (:data:`MAX_DEPTH`), and check the value against a small schema (:class:`Obj`,
:class:`ListOf`, :class:`Int`, :class:`Num`, :class:`Str`, ``bool``, ``dict``, ``list``,
``object``): every failure is one :class:`~instrec._io.InstrecError` line naming the file and
the field, never a traceback and never a value of the wrong type in the code that uses it.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instrec._io import InstrecError

#: Largest state file read (bytes): instrec's own are kilobytes (a run's config with its
#: thresholds and history is under 100 KB; a catalogue manifest line is one batch).
MAX_BYTES = 64 << 20
#: Deepest nesting of arrays and objects accepted; instrec writes at most 5 levels.
MAX_DEPTH = 32


@dataclass(frozen=True)
class Int:
    """An integer (not a bool) in [lo, hi]."""

    lo: int | None = None
    hi: int | None = None


@dataclass(frozen=True)
class Num:
    """A finite number (int or float, not a bool) in [lo, hi]."""

    lo: float | None = None
    hi: float | None = None


@dataclass(frozen=True)
class Str:
    """A string; ``nonempty``: at least one character."""

    nonempty: bool = False


@dataclass(frozen=True)
class ListOf:
    """A list whose every item matches ``item``, with ``lo``..``hi`` items."""

    item: Any = object
    lo: int = 0
    hi: int | None = None


@dataclass(frozen=True)
class Obj:
    """An object: ``fields`` maps a key to its schema; keys in ``required`` must be present,
    the others are checked where present; keys not in ``fields`` are allowed."""

    fields: dict[str, Any] = field(default_factory=dict)
    required: tuple[str, ...] = ()


@dataclass(frozen=True)
class Nullable:
    """``null`` or a value matching ``schema``."""

    schema: Any


def _fail(source: str, where: str, problem: str) -> InstrecError:
    return InstrecError(f"{source}: {('field ' + repr(where) + ' ') if where else ''}{problem}")


def _describe(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (int, float, str, bool)) or value is None else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def check(value: Any, schema: Any, source: str, where: str = "") -> Any:
    """``value`` if it matches ``schema``, else InstrecError naming ``source`` and the field
    path ``where`` (``a.b[3]``). Returns ``value`` unchanged."""
    if schema is object:
        return value
    if isinstance(schema, Nullable):
        return value if value is None else check(value, schema.schema, source, where)
    if isinstance(schema, Int) or schema is int:
        schema = schema if isinstance(schema, Int) else Int()
        if type(value) is not int:
            raise _fail(source, where, f"must be an integer, got {_describe(value)}")
        if (schema.lo is not None and value < schema.lo) or (schema.hi is not None and value > schema.hi):
            raise _fail(source, where, f"must be an integer in [{schema.lo}, {schema.hi}], got {value}")
        return value
    if isinstance(schema, Num) or schema is float:
        schema = schema if isinstance(schema, Num) else Num()
        if type(value) not in (int, float) or not math.isfinite(value):
            raise _fail(source, where, f"must be a finite number, got {_describe(value)}")
        if (schema.lo is not None and value < schema.lo) or (schema.hi is not None and value > schema.hi):
            raise _fail(source, where, f"must be a number in [{schema.lo}, {schema.hi}], got {value}")
        return value
    if isinstance(schema, Str) or schema is str:
        if not isinstance(value, str):
            raise _fail(source, where, f"must be text, got {_describe(value)}")
        if isinstance(schema, Str) and schema.nonempty and not value:
            raise _fail(source, where, "must not be empty")
        return value
    if schema is bool:
        if not isinstance(value, bool):
            raise _fail(source, where, f"must be true or false, got {_describe(value)}")
        return value
    if schema is dict or isinstance(schema, Obj):
        if not isinstance(value, dict):
            raise _fail(source, where, f"must be a JSON object, got {_describe(value)}")
        if isinstance(schema, Obj):
            for key in schema.required:
                if key not in value:
                    raise _fail(source, f"{where}.{key}" if where else key, "is missing")
            for key, sub in schema.fields.items():
                if key in value:
                    check(value[key], sub, source, f"{where}.{key}" if where else key)
        return value
    if schema is list or isinstance(schema, ListOf):
        if not isinstance(value, list):
            raise _fail(source, where, f"must be a list, got {_describe(value)}")
        if isinstance(schema, ListOf):
            if len(value) < schema.lo or (schema.hi is not None and len(value) > schema.hi):
                bound = f"{schema.lo}..{schema.hi}" if schema.hi is not None else f"at least {schema.lo}"
                raise _fail(source, where, f"must hold {bound} items, got {len(value)}")
            for i, item in enumerate(value):
                check(item, schema.item, source, f"{where}[{i}]")
        return value
    raise TypeError(f"unknown schema {schema!r}")


def _depth_ok(value: Any, limit: int) -> bool:
    """Whether ``value`` nests at most ``limit`` arrays/objects deep (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return False
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return True


def parse_json(data: bytes | str, source: str, schema: Any = object, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON ``data`` (UTF-8 bytes or text) from ``source`` and check it against ``schema``."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise InstrecError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    # A bracket count bounds the nesting before the parser recurses into it.
    if text.count("[") + text.count("{") > max_depth and not _shallow(text, max_depth):
        raise InstrecError(f"{source}: JSON nested deeper than {max_depth} levels")
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise InstrecError(f"{source}: not valid JSON ({str(exc).splitlines()[0][:120]})") from None
    if not _depth_ok(value, max_depth):
        raise InstrecError(f"{source}: JSON nested deeper than {max_depth} levels")
    return check(value, schema, source)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def _shallow(text: str, limit: int) -> bool:
    """Whether brackets outside strings nest at most ``limit`` deep (a linear scan)."""
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub("", text)):
        depth += 1 if match.group() in "[{" else -1
        if depth > limit:
            return False
    return True


def read_bytes(path: str | os.PathLike, max_bytes: int = MAX_BYTES) -> bytes:
    """The bytes of a state file; InstrecError when missing, unreadable or over ``max_bytes``."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > max_bytes:
                raise InstrecError(f"{path}: {size} bytes, more than the {max_bytes} a state file may have")
            return fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise InstrecError(f"{path}: not found") from None
    except IsADirectoryError:
        raise InstrecError(f"{path}: is a folder, not a JSON file") from None
    except OSError as exc:
        raise InstrecError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_json(path: str | os.PathLike, schema: Any = object, max_bytes: int = MAX_BYTES) -> Any:
    """The JSON value in ``path``, checked against ``schema`` (see the module docstring)."""
    return parse_json(read_bytes(path, max_bytes), str(path), schema)


def read_jsonl(path: str | os.PathLike, schema: Any = object,
               max_bytes: int = MAX_BYTES) -> tuple[list[Any], bool]:
    """The values of a JSON Lines file, each checked against ``schema``, and whether its last
    line was torn (no final newline: a writer died in the middle of it; the line is kept only
    if it parses). Any other bad line is an error naming the file and the line number."""
    data = read_bytes(path, max_bytes)
    lines = data.split(b"\n")
    tail = lines.pop()  # after the last newline: empty, or a line without its newline
    values: list[Any] = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            values.append(parse_json(line, f"{path} line {number}", schema))
    torn = bool(tail.strip())
    if torn:
        try:
            values.append(parse_json(tail, f"{path} line {len(lines) + 1}", schema))
        except InstrecError:
            pass
    return values, torn
