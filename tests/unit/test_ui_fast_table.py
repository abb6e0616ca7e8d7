"""Long tables are laid out directly, and exactly as rich lays them out.

``FitTable`` writes a table of 40 or more rows of one-line cells itself when it fits (rich
spends ~2 ms a row: ``idt all`` took half a second). The output must be the same, plain
and coloured, at any width — including the widths where rich must narrow the table and
the fast layout steps aside.
"""

from __future__ import annotations

import io

import pytest

from lhvdbg.commands.views import view_renderable
from lhvdbg.state.target import SnapshotTarget
from lhvdbg.ui import tables
from lhvdbg.ui.console import make_console
from tests.unit.recorded_snapshots import recorded


def _render(name: str, arg: str | None, snapshot: str, color: bool, width: int) -> str:
    out = io.StringIO()
    console = make_console(file=out, width=width, color=color)
    console.print(view_renderable(name, SnapshotTarget(recorded(snapshot)), arg))
    return out.getvalue()


@pytest.mark.parametrize("snapshot", ["lhv-good-amd64", "lhv-good-i386", "long-tcg"])
@pytest.mark.parametrize("width", [60, 80, 120])
@pytest.mark.parametrize("color", [False, True])
def test_idt_all_is_the_same_with_and_without_the_fast_layout(
    snapshot: str, width: int, color: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = _render("idt", "all", snapshot, color, width)
    monkeypatch.setattr(tables.FitTable, "_FAST_ROWS", 10**9)
    slow = _render("idt", "all", snapshot, color, width)
    assert fast == slow
    assert fast.count("\n") > 40  # a long table: the fast layout was in play


def test_the_fast_layout_is_used_for_a_long_table_that_fits() -> None:
    table = tables.FitTable(
        title="t", title_justify="left", box=tables.box.SIMPLE_HEAD, pad_edge=False, show_edge=False
    )
    table.add_column("a", no_wrap=True)
    table.add_column("b", no_wrap=True)
    for i in range(50):
        table.add_row(f"{i:#x}", "x" * (i % 7))
    text = table._fast_layout(80)
    assert text is not None and text.plain.splitlines()[1:3] == ["a      b", "─" * 13]
    assert table._fast_layout(10) is None  # too wide: rich narrows it
