"""The code samples of the docs pages (Python, TOML), read as the pages write them.

The example *outputs* are generated and checked by tests/docs_examples.py; the samples a
reader copies — a Python API use, a scenario file — are run as written by
tests/unit/test_docs_pages.py (offline ones) and tests/integration/test_docs_pages.py.
A ``print(...)`` line of a Python sample whose comment gives the output is checked against
what it prints: ``# breakpoint 1 hit at kernel_main (0x...)`` (``0x...`` stands for any
hexadecimal number, ``...`` for any text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```(?P<lang>\w*)\s*$")
PRINT_COMMENT = re.compile(r"^\s*print\(.*\)\s*#\s?(?P<shown>.*)$")


@dataclass(frozen=True)
class Sample:
    """One fenced code sample of a page."""

    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    def printed(self) -> list[str]:
        """The outputs the sample's comments promise, one per ``print`` line, in order."""
        return [m.group("shown").rstrip() for m in map(PRINT_COMMENT.match, self.lines()) if m]

    def lines(self) -> list[str]:
        return self.text.split("\n")


def samples(page: str, lang: str) -> list[Sample]:
    """The ``lang`` fenced blocks of a page (relative to the repository root)."""
    path = ROOT / page
    lines = path.read_text().split("\n")
    found: list[Sample] = []
    index = 0
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if fence is None:
            index += 1
            continue
        close = next(i for i in range(index + 1, len(lines)) if lines[i].strip() == "```")
        if fence.group("lang") == lang:
            found.append(Sample(path, index + 1, lang, "\n".join(lines[index + 1 : close])))
        index = close + 1
    return found


def matches_shown(shown: str, printed: str) -> bool:
    """Whether a printed line is the one a comment shows (``0x...``: any hex number,
    ``...``: any text)."""
    pattern = re.escape(shown).replace(re.escape("0x..."), "0x[0-9a-f]+")
    pattern = pattern.replace(re.escape("..."), ".*")
    return re.fullmatch(pattern, printed) is not None
