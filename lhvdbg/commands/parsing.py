"""Argument parsing rules shared by the CLI, the shell and scenarios.

Light on purpose (argparse, re and the error tree only): ``lhvdbg CMD`` builds its parser
with this before the registry is needed.
"""

from __future__ import annotations

import argparse
import re

from lhvdbg.errors import UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

# Words argparse must read as values, not options: -16, -0x10, -0b1, -0o7, -1.5.
_NEGATIVE_NUMBER = re.compile(
    r"^-(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|\d[\d_]*|\d*\.\d+)$"
)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with lhvdbg's two rules: a usage error is one :class:`UsageError` line
    naming the argument (no usage block), and negative numbers in any base (``-0x10``)
    are values, not options."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = _NEGATIVE_NUMBER

    def error(self, message: str) -> Any:  # argparse's signature is NoReturn
        prog = self.prog.removeprefix("lhvdbg").strip()
        raise UsageError(f"{prog}: {message}" if prog else message)
