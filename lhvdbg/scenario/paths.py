"""Field paths such as ``tr.selector``, ``idt[0x20].present``, ``diagnosis[0].id``.

A path is a name followed by ``.name`` members and ``[index]`` subscripts; an index is an
integer (decimal, ``0x`` hex, negative counts from the end of a list) or a quoted string.
Paths resolve against the JSON-like facts dict built by :mod:`lhvdbg.scenario.facts`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

PathKey = str | int

_TOKEN = re.compile(
    r"""
    (?P<name>[A-Za-z_][A-Za-z0-9_-]*)
  | \[\s*(?P<int>-?(?:0[xX][0-9a-fA-F]+|0[bB][01]+|[0-9]+))\s*\]
  | \[\s*(?P<str>"[^"]*"|'[^']*')\s*\]
  | (?P<dot>\.)
    """,
    re.VERBOSE,
)


def parse_path(text: str) -> tuple[PathKey, ...]:
    """Split ``text`` into keys; ValueError with a short reason if it is not a path."""
    keys: list[PathKey] = []
    position = 0
    expect_name = True  # at the start and after a dot
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ValueError(f"bad field path {text!r} at character {position + 1}")
        if match.group("name") is not None:
            if not expect_name:
                raise ValueError(f"bad field path {text!r}: missing '.' before {match.group()}")
            keys.append(match.group("name"))
            expect_name = False
        elif match.group("dot") is not None:
            if expect_name:
                raise ValueError(f"bad field path {text!r}: misplaced '.'")
            expect_name = True
        else:
            if expect_name:
                raise ValueError(f"bad field path {text!r}: subscript needs a name before it")
            if match.group("int") is not None:
                keys.append(int(match.group("int"), 0))
            else:
                keys.append(match.group("str")[1:-1])
        position = match.end()
    if not keys or expect_name:
        raise ValueError(f"bad field path {text!r}: incomplete")
    return tuple(keys)


def format_keys(keys: Sequence[PathKey]) -> str:
    """The inverse of :func:`parse_path` (integers written in hex when >= 10)."""
    out = ""
    for key in keys:
        if isinstance(key, int):
            out += f"[{key:#x}]" if key >= 10 else f"[{key}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key):
            out += f".{key}" if out else key
        else:
            out += f'["{key}"]'
    return out


@dataclass(frozen=True)
class Missing:
    """A path that does not resolve: where it stopped, and why."""

    at: str
    reason: str

    def __str__(self) -> str:
        return f"{self.at}: {self.reason}" if self.at else self.reason


def resolve(facts: Mapping[str, object], path: str | Sequence[PathKey]) -> object:
    """The value at ``path`` in ``facts``, or a :class:`Missing` saying where it stopped."""
    keys = parse_path(path) if isinstance(path, str) else tuple(path)
    value: object = facts
    for depth, key in enumerate(keys):
        here = format_keys(keys[:depth])
        if isinstance(value, Mapping):
            if key in value:
                value = value[key]
                continue
            if isinstance(key, str) and key.lower() in value:
                value = value[key.lower()]
                continue
            return Missing(here, f"no field {format_keys([key]).lstrip('.')} ({_offer(value)})")
        if isinstance(value, Sequence) and not isinstance(value, str | bytes):
            if not isinstance(key, int):
                return Missing(here, f"is a list: use an index, not .{key}")
            if -len(value) <= key < len(value):
                value = value[key]
                continue
            return Missing(here, f"index {key} out of range (the list has {len(value)} items)")
        shown = "null" if value is None else type(value).__name__
        return Missing(here, f"is {shown}, not a table or a list")
    return value


def _offer(table: Mapping[object, object]) -> str:
    """A short list of the keys a table has, for error messages."""
    keys = list(table)
    if not keys:
        return "the table is empty"
    shown = [f"{k:#x}" if isinstance(k, int) else str(k) for k in keys[:12]]
    more = f", … {len(keys) - 12} more" if len(keys) > 12 else ""
    return "has " + ", ".join(shown) + more
