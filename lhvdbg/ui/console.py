"""The one place a rich Console is made (colour, width, plain text for golden tests)."""

from __future__ import annotations

import os
from typing import TextIO

from rich.console import Console

PIPED_WIDTH = 120


def make_console(file: TextIO, *, color: bool = True, width: int | None = None) -> Console:
    """A Console writing to ``file``; ``color=False`` gives plain text with no markup codes.

    When ``file`` is not a terminal and no width is given, the width is ``$COLUMNS`` or
    120, so piped output and logs are not cut at rich's default of 80 columns.
    """
    if width is None and not (hasattr(file, "isatty") and file.isatty()):
        width = int(os.environ.get("COLUMNS", "0") or 0) or PIPED_WIDTH
    return Console(
        file=file,
        width=width,
        no_color=not color,
        color_system="auto" if color else None,
        highlight=False,
        soft_wrap=False,
        emoji=False,
    )
