"""Rendering of scenario results and listings (``lhvdbg scenario run|list``).

Plain text reads the same with colour off: the status word (PASS, FAIL, ERROR) carries
the meaning, colour only repeats it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text

from lhvdbg.ui.tables import FitTable, bullet

_STATUS = {"pass": ("PASS", "green"), "fail": ("FAIL", "bold red"), "error": ("ERROR", "bold red")}


def result_line(
    status: str,
    label: str,
    elapsed: float,
    accel: str | None,
    file: str,
    failures: Sequence[str],
    host_access: Sequence[str] | None = None,
    *,
    wrap: bool = False,
) -> RenderableType:
    """``PASS  name  1.2 s tcg``; a failure adds the file and one indented line per failure.
    ``host_access`` (a run with --allow-host) adds ``host access allowed`` and one indented
    line per thing the file did to the host. ``wrap`` (a terminal): each failure wraps at
    the width under its own text; otherwise one line each (print it with ``soft_wrap``)."""
    word, style = _STATUS[status]
    text = Text()
    text.append(f"{label}  ")
    text.append(f"{elapsed:.1f} s{' ' + accel if accel else ''}", style="dim")
    if host_access is not None:
        uses = len(host_access)
        text.append(f"  host access allowed ({uses} use{'' if uses == 1 else 's'})", "yellow")
    if status != "pass":
        text.append(f"  {file}", style="dim")
    lines = list(failures) if status != "pass" else []
    allowed = [f"allowed: {use}" for use in host_access or ()]
    if wrap:
        return Group(
            bullet(text, f"{word:<5} ", style=style),
            *(bullet(line, "", indent=6) for line in lines),
            *(bullet(line, "", indent=6, style="yellow") for line in allowed),
        )
    text = Text(f"{word:<5} ", style=style).append_text(text)
    for line in lines:
        text.append(f"\n      {line}")
    for line in allowed:
        text.append(f"\n      {line}", style="yellow")
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


_LIST_COLUMNS = (
    ("scenario", "label"),
    ("arch", "arch"),
    ("kernel", "kernel"),
    ("accel", "accel"),
    ("steps", "steps"),
    ("checks", "assertions"),
)
_NAME_MIN = 24  # below this the name column would wrap into a ribbon: use two lines
_GAP = 3  # rich's column padding in these tables (1 each side) plus the SIMPLE_HEAD gap


class _ScenarioListing:
    """One row per scenario when the width allows the name column ``_NAME_MIN`` wide;
    else each scenario on two lines (its facts, then its name indented), so the name is
    never squeezed out."""

    def __init__(self, rows: Sequence[Mapping[str, object]]) -> None:
        self.rows = rows

    def _fixed_width(self) -> int:
        widths = [
            max([len(title), *(len(str(r[key])) for r in self.rows)])
            for title, key in _LIST_COLUMNS
        ]
        return sum(widths) + _GAP * len(widths)

    def _table(self) -> Table:
        table = FitTable(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        for title, _ in _LIST_COLUMNS:
            table.add_column(title, no_wrap=True)
        table.add_column("name", ratio=1, overflow="fold")
        for row in self.rows:
            table.add_row(*(str(row[key]) for _, key in _LIST_COLUMNS), str(row["name"]))
        return table

    def _two_lines(self) -> RenderableType:
        parts: list[RenderableType] = []
        for row in self.rows:
            head = Text(str(row["label"]), style="bold")
            steps, checks = row["steps"], row["assertions"]
            head.append(
                f"  {row['arch']} {row['kernel']}, {row['accel']}, "
                f"{steps} step{'' if steps == 1 else 's'}, "
                f"{checks} check{'' if checks == 1 else 's'}",
                style="dim",
            )
            parts.append(head)
            parts.append(bullet(str(row["name"]), "", indent=4))
        return Group(*parts)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self._fixed_width() + _NAME_MIN <= options.max_width:
            yield self._table()
        else:
            yield self._two_lines()


def scenario_table(rows: Sequence[Mapping[str, object]]) -> RenderableType:
    """The ``scenario list`` listing: a table, or two lines per scenario when narrow."""
    return _ScenarioListing(rows)
