"""The one place a rich Console is made (colour, width, plain text for golden tests)."""

from __future__ import annotations

import io
import os
import re
from typing import IO, TextIO, cast

from rich.console import Console

PIPED_WIDTH = 120
_LINE_END_PADDING = re.compile(r"(?:[ ]|\x1b\[[0-9;]*m)+(?=\n)")
_STYLE_CODE = re.compile(r"\x1b\[[0-9;]*m")


def is_terminal(stream: object) -> bool:
    """Whether ``stream`` is a terminal (False for anything without ``isatty``)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty()) if callable(isatty) else False


def trim_line_ends(text: str) -> str:
    """``text`` without the spaces before each newline (style codes there are kept)."""
    return _LINE_END_PADDING.sub(lambda m: "".join(_STYLE_CODE.findall(m.group())), text)


class _TrimmedLines(io.TextIOBase):
    """Writes through to ``file`` without padding at line ends (tables pad their last
    column to its width; a line never ends in spaces)."""

    def __init__(self, file: TextIO) -> None:
        super().__init__()
        self._file = file

    def write(self, text: str) -> int:
        self._file.write(trim_line_ends(text))
        return len(text)

    def flush(self) -> None:
        self._file.flush()

    def isatty(self) -> bool:
        return is_terminal(self._file)

    def fileno(self) -> int:
        return self._file.fileno()


def make_console(file: TextIO, *, color: bool = True, width: int | None = None) -> Console:
    """A Console writing to ``file``; ``color=False`` gives plain text with no markup codes.

    When ``file`` is not a terminal and no width is given, the width is ``$COLUMNS`` or
    120, so piped output and logs are not cut at rich's default of 80 columns. No line
    ends in padding spaces.
    """
    if width is None and not is_terminal(file):
        width = int(os.environ.get("COLUMNS", "0") or 0) or PIPED_WIDTH
    return Console(
        file=cast(IO[str], _TrimmedLines(file)),
        width=width,
        no_color=not color,
        color_system="auto" if color else None,
        highlight=False,
        soft_wrap=False,
        emoji=False,
    )
