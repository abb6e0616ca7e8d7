"""How scenario values read and compare as numbers: shared by the model (describing an
assertion), the loader (checking one) and the assertions (evaluating one)."""

from __future__ import annotations

import json
from typing import TypeGuard


def as_number(value: object) -> int | float | None:
    """A number, or a string spelling one (``"0x20"``); None otherwise (booleans too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:
            return None
    return None


def show_value(value: object, limit: int = 120, *, hex_small: bool = False) -> str:
    """A value as a report shows it: integers >= 10 in hex (all of them with
    ``hex_small``), strings quoted and cut short."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int):
        text = f"{value:#x}" if value >= 10 or (hex_small and value >= 0) else str(value)
    elif value is None:
        text = "null"
    elif isinstance(value, (list, tuple)) and value and all(map(_is_int, value)):
        text = "[" + ", ".join(show_value(n, limit, hex_small=hex_small) for n in value) + "]"
    elif isinstance(value, str):
        text = json.dumps(
            value if len(value) <= limit else "…" + value[-(limit - 1) :], ensure_ascii=False
        )
    else:
        text = json.dumps(value, default=str)
    return text if len(text) <= limit + 2 else text[: limit - 1] + "…"


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _ints(value: object) -> list[int]:
    """The integers in ``value`` (itself, or the items of a list), booleans left out."""
    if _is_int(value):
        return [value]
    if isinstance(value, (list, tuple)):
        return [n for item in value for n in _ints(item)]
    return []


def show_pair(expected: object, actual: object) -> tuple[str, str]:
    """``expected`` and ``actual`` shown in one base: when either holds an integer shown
    in hex, small ones are hex too (``expected equals 0x20, actual 0x8``, not ``8``)."""
    hex_small = any(n >= 10 for n in _ints(expected) + _ints(actual))
    return show_value(expected, hex_small=hex_small), show_value(actual, hex_small=hex_small)
