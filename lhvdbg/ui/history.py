"""Rendering of histories (``lhvdbg trace``) and comparisons (``lhvdbg compare``)."""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.text import Text

from lhvdbg.diagnose.history import Comparison, Difference
from lhvdbg.state.history import History
from lhvdbg.ui.event_cells import event_value, event_what
from lhvdbg.ui.tables import FitTable

_KIND_STYLE = {"interrupt": "magenta", "fault": "bold red", "insn": "cyan", "lapic": "green"}


def render_history(history: History) -> RenderableType:
    """The events as a table (one row each), then how the run ended."""
    table = FitTable(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for name in ("#", "kind", "what", "value", "where", "meaning"):
        table.add_column(name, justify="right" if name == "#" else "left")
    for e in history.events:
        kind = e.kind if e.source == "kernel" else f"{e.kind} (firmware)"
        table.add_row(
            str(e.seq),
            Text(kind, style=_KIND_STYLE.get(e.kind, "")),
            event_what(e),
            event_value(e),
            e.symbol or "",
            e.decoded,
        )
    footer = Text(
        f"{len(history.events)} events in {history.seconds:.2f} s"
        f" (QEMU {history.qemu_version or '?'}); ended: {history.ended}",
        style="dim",
    )
    return Group(table, footer)


def _difference_row(diff: Difference) -> list[str]:
    good = "; ".join(e.decoded for e in diff.good[:4]) + (" ..." if len(diff.good) > 4 else "")
    bad = "; ".join(e.decoded for e in diff.bad[:4]) + (" ..." if len(diff.bad) > 4 else "")
    return [diff.kind, "yes" if diff.matters else "no", good or "-", bad or "-"]


def render_comparison(comparison: Comparison, good_name: str, bad_name: str) -> RenderableType:
    """The first divergence that matters in words, then every difference."""
    first = comparison.first_divergence
    head = (
        Text(f"first divergence: {first.explanation}", style="bold")
        if first is not None
        else Text("no divergence that matters", style="bold green")
    )
    table = FitTable(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for name in ("difference", "matters", f"good: {good_name}", f"this: {bad_name}"):
        table.add_column(name)
    for diff in comparison.differences:
        table.add_row(*_difference_row(diff))
    ends = Text(
        f"good ended: {comparison.good.ended}\nthis ended: {comparison.bad.ended}", style="dim"
    )
    if not comparison.differences:
        return Group(head, ends)
    return Group(head, Text(""), table, ends)
