"""Find the line where a key of a TOML document was written.

``tomllib`` reports line and column for syntax errors only; a schema error (a wrong type,
an unknown key) is found after parsing, on the data. This module maps a data path such
as ``("step", 2, "break")`` back to a line by a light scan of the text: table headers
(``[x]``, ``[[x]]``, ``[[x.y]]``) and ``key =`` lines. It does not parse values; keys
inside inline tables resolve to the line of the enclosing key.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

PathPart = str | int

_BARE = r"[A-Za-z0-9_-]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"|\'[^\']*\''
_KEY = rf"(?:{_BARE}|{_QUOTED})(?:\s*\.\s*(?:{_BARE}|{_QUOTED}))*"
_ARRAY_HEADER = re.compile(rf"^\[\[\s*({_KEY})\s*\]\]")
_TABLE_HEADER = re.compile(rf"^\[\s*({_KEY})\s*\]")
_KEY_LINE = re.compile(rf"^({_KEY})\s*=")
_KEY_PART = re.compile(rf"{_BARE}|{_QUOTED}")


def _split_key(dotted: str) -> tuple[str, ...]:
    parts = []
    for match in _KEY_PART.finditer(dotted):
        text = match.group(0)
        parts.append(text[1:-1] if text[0] in "\"'" else text)
    return tuple(parts)


def key_lines(text: str) -> dict[tuple[PathPart, ...], int]:
    """Map each table, array element and key path found in ``text`` to its 1-based line."""
    lines: dict[tuple[PathPart, ...], int] = {}
    counts: dict[tuple[PathPart, ...], int] = {}
    current: tuple[PathPart, ...] = ()
    in_string: str | None = None

    def resolve(names: tuple[str, ...]) -> tuple[PathPart, ...]:
        # Each prefix that names an array of tables means its latest element.
        path: tuple[PathPart, ...] = ()
        for name in names:
            path += (name,)
            if path in counts:
                path += (counts[path],)
        return path

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if in_string is not None:
            if line.count(in_string) % 2 == 1:
                in_string = None
            continue
        if match := _ARRAY_HEADER.match(line):
            names = _split_key(match.group(1))
            array = (*resolve(names[:-1]), names[-1])
            index = counts.get(array, -1) + 1
            counts[array] = index
            current = (*array, index)
            lines.setdefault(array, number)
            lines[current] = number
        elif match := _TABLE_HEADER.match(line):
            current = resolve(_split_key(match.group(1)))
            lines.setdefault(current, number)
        elif match := _KEY_LINE.match(line):
            lines.setdefault(current + _split_key(match.group(1)), number)
            for quote in ('"""', "'''"):
                if line.count(quote) % 2 == 1:
                    in_string = quote
                    break
    return lines


def line_of(lines: dict[tuple[PathPart, ...], int], path: Sequence[PathPart]) -> int:
    """The line of ``path``, or of its longest prefix that was found; 0 if none."""
    parts = tuple(path)
    while parts:
        if parts in lines:
            return lines[parts]
        parts = parts[:-1]
    return 0


def format_path(path: Sequence[PathPart]) -> str:
    """``("step", 2, "break")`` → ``step[3].break``: elements are numbered from 1."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part + 1}]"
        else:
            out += f".{part}" if out else part
    return out
