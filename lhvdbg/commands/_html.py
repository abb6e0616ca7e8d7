"""``--html FILE``: the option, and writing the page (``break-on-df``, ``diff-tss``, ``show``,
``trace``, ``compare``).

The page is rendered by :mod:`lhvdbg.ui.html` from the command's data; this module only
declares the option and writes the file (whole or not at all), saying where on stderr so
stdout keeps the text or JSON the command prints anyway.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lhvdbg.errors import UsageError


def add_html_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--html FILE``."""
    parser.add_argument(
        "--html",
        type=Path,
        metavar="FILE",
        help="also write one self-contained HTML page (inline CSS/SVG, no script, no network)",
    )


def check_html_path(path: Path | None) -> None:
    """Fail before any work when ``path``'s folder does not exist (a one-line error)."""
    if path is None:
        return
    folder = path.resolve().parent
    if not folder.is_dir():
        raise UsageError(f"--html {path}: no such folder {folder}")
    if path.is_dir():
        raise UsageError(f"--html {path}: is a folder")


def write_html(path: Path, page: str) -> None:
    """Write ``page`` to ``path`` atomically; say so on stderr."""
    import os
    import sys
    import tempfile

    folder = path.resolve().parent
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    except OSError as exc:
        raise UsageError(f"--html {path}: cannot write ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(page)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise UsageError(f"--html {path}: cannot write ({exc.strerror or exc})") from None
    print(f"lhvdbg: wrote {path}", file=sys.stderr)
