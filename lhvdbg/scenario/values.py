"""How scenario values read and compare as numbers: shared by the model (describing an
assertion), the loader (checking one) and the assertions (evaluating one)."""

from __future__ import annotations

import json


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


def show_value(value: object, limit: int = 120) -> str:
    """A value as a report shows it: integers >= 10 in hex, strings quoted and cut short."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int):
        text = f"{value:#x}" if value >= 10 else str(value)
    elif value is None:
        text = "null"
    elif isinstance(value, str):
        text = json.dumps(
            value if len(value) <= limit else "…" + value[-(limit - 1) :], ensure_ascii=False
        )
    else:
        text = json.dumps(value, default=str)
    return text if len(text) <= limit + 2 else text[: limit - 1] + "…"
