"""The one place a rich Console is made (colour, width, plain text for golden tests)."""

from __future__ import annotations

from typing import TextIO

from rich.console import Console


def make_console(file: TextIO, *, color: bool = True, width: int | None = None) -> Console:
    """A Console writing to ``file``; ``color=False`` gives plain text with no markup codes."""
    return Console(
        file=file,
        width=width,
        no_color=not color,
        color_system="auto" if color else None,
        highlight=False,
        soft_wrap=False,
        emoji=False,
    )
