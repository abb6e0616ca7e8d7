"""Rendering of scenario results and listings (``lhvdbg scenario run|list``).

Plain text reads the same with colour off: the status word (PASS, FAIL, ERROR) carries
the meaning, colour only repeats it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich import box
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

_STATUS = {"pass": ("PASS", "green"), "fail": ("FAIL", "bold red"), "error": ("ERROR", "bold red")}


def result_line(
    status: str,
    label: str,
    elapsed: float,
    accel: str | None,
    file: str,
    failures: Sequence[str],
) -> RenderableType:
    """``PASS  name  1.2 s tcg``; a failure adds the file and one indented line per failure."""
    word, style = _STATUS[status]
    text = Text()
    text.append(f"{word:<5}", style=style)
    text.append(f" {label}  ")
    text.append(f"{elapsed:.1f} s{' ' + accel if accel else ''}", style="dim")
    if status != "pass":
        text.append(f"  {file}", style="dim")
        for failure in failures:
            text.append(f"\n      {failure}")
    return text


def summary_line(
    passed: int, failed: int, errors: int, elapsed: float, jobs: int
) -> RenderableType:
    """``3 scenarios: 3 passed, 0 failed, 0 errors in 4.1 s (-j 2)``."""
    total = passed + failed + errors
    style = "green" if passed == total else "bold red"
    text = Text(f"{total} scenarios: {passed} passed, {failed} failed, {errors} errors", style)
    text.append(f" in {elapsed:.1f} s (-j {jobs})")
    return text


def scenario_table(rows: Sequence[Mapping[str, object]]) -> RenderableType:
    """The ``scenario list`` table."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for name in ("scenario", "arch", "kernel", "accel", "steps", "checks"):
        table.add_column(name, no_wrap=True)
    table.add_column("name", ratio=1, overflow="fold")
    for row in rows:
        table.add_row(
            str(row["label"]),
            str(row["arch"]),
            str(row["kernel"]),
            str(row["accel"]),
            str(row["steps"]),
            str(row["assertions"]),
            str(row["name"]),
        )
    return table
