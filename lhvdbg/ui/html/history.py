"""``trace --html`` and ``compare --html``: a run's history as a timeline, and where two
runs diverge.

The timeline has one row per event (``lhvdbg trace``'s table): what was touched, the value,
where (symbol and RIP), the meaning; interrupts carry their vector and name. Marked: a
device interrupt on a CPU exception vector (0x00-0x1f), the first vector 8 and a triple
fault; on a comparison, the events of each difference (``missing``/``extra``/``changed``),
those of the first divergence that matters most strongly. Built from :class:`History` and
:class:`Comparison`; nothing here runs a machine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from lhvdbg.diagnose.history import Comparison, Difference, pic_story
from lhvdbg.state.history import History, HistoryEvent
from lhvdbg.ui.event_cells import event_value, event_what
from lhvdbg.ui.html.markup import esc, html_row, html_table, meta, page
from lhvdbg.x86.vectors import DOUBLE_FAULT, FIRST_USER_VECTOR, vector_name

__all__ = ["comparison_page", "trace_page"]


@dataclass(frozen=True)
class Mark:
    """Why a timeline row is marked: a badge (``css`` and text) and whether the row is a
    problem (highlighted)."""

    css: str
    text: str
    problem: str = ""  # "" / "error" / "matters" / "info"


def _where(event: HistoryEvent) -> str:
    if event.symbol and event.rip is not None and not event.symbol.startswith("0x"):
        return f"{event.symbol} ({event.rip:#x})"
    if event.rip is not None:
        return f"{event.rip:#x}"
    return event.symbol or ""


def _on_vector_8(event: HistoryEvent) -> bool:
    """Vector 8 taken as an exception or a device interrupt (not a software ``int $8``)."""
    return event.kind == "interrupt" and event.value == DOUBLE_FAULT and event.name != "int"


def history_marks(history: History) -> dict[int, list[Mark]]:
    """Marks of a run's own events (by ``seq``): a device on an exception vector, the first
    vector 8, a triple fault."""
    marks: dict[int, list[Mark]] = {}
    first_df = False
    for event in history.events:
        if event.kind == "interrupt" and event.value is not None:
            hardware = event.name == "irq"
            if hardware and event.value < FIRST_USER_VECTOR:
                marks.setdefault(event.seq, []).append(
                    Mark("conflict", "device on an exception vector", "error")
                )
            if _on_vector_8(event) and not first_df:
                first_df = True
                marks.setdefault(event.seq, []).append(Mark("stop", "first vector 8", "error"))
        elif event.kind == "fault":
            marks.setdefault(event.seq, []).append(Mark("triple", event.name, "error"))
    return marks


def timeline_section(
    history: History,
    marks: Mapping[int, Iterable[Mark]],
    *,
    title: str,
    anchor: str,
    side: str = "",
) -> str:
    """The events as table rows (``tr.history-row``, ``data-seq``/``data-kind``/
    ``data-source``, ``data-vector`` for interrupts), marked rows highlighted."""
    rows = []
    for event in history.events:
        these = list(marks.get(event.seq, ()))
        problem = next((m.problem for m in these if m.problem), "")
        css = "history-row" + (f" problem {problem}" if problem else "")
        if event.source != "kernel":
            css += " dim"
        attrs = (
            f' data-seq="{event.seq}" data-kind="{esc(event.kind)}"'
            f' data-source="{esc(event.source)}"'
        )
        if side:
            attrs += f' data-side="{esc(side)}"'
        if event.kind == "interrupt" and event.value is not None:
            attrs += f' data-vector="{event.value}"'
        kind = event.kind if event.source == "kernel" else f"{event.kind} (firmware)"
        badges = "".join(f'<span class="badge {esc(m.css)}">{esc(m.text)}</span>' for m in these)
        cells = [
            str(event.seq),
            esc(kind),
            esc(event_what(event)),
            esc(event_value(event)),
            esc(_where(event)),
            badges + esc(event.decoded),
        ]
        rows.append(html_row(cells, css=css, attrs=attrs, raw=True))
    columns = ("#", "kind", "what", "value", "where", "meaning")
    body = html_table(columns, rows, css="history") if rows else '<p class="prose">no events</p>'
    return f'<h2 id="{esc(anchor)}">{esc(title)}</h2>{body}'


def _interrupts_section(history: History) -> str:
    """Each vector the run took: how (hardware, exception, software), how often, first
    and last event; a device on an exception vector highlighted."""
    seen: dict[tuple[int, str], list[HistoryEvent]] = {}
    for event in history.kernel_events():
        if event.kind == "interrupt" and event.value is not None:
            seen.setdefault((event.value, event.name), []).append(event)
    if not seen:
        return ""
    how = {"irq": "hardware", "int": "software", "exception": "exception"}
    rows = []
    for (vector, name), events in sorted(seen.items()):
        conflict = name == "irq" and vector < FIRST_USER_VECTOR
        cells = [
            f"{vector:#04x}",
            vector_name(vector),
            how.get(name, name),
            str(len(events)),
            f"#{events[0].seq}" + (f" .. #{events[-1].seq}" if len(events) > 1 else ""),
            events[0].decoded,
        ]
        css = "vector-row problem error" if conflict else "vector-row"
        rows.append(html_row(cells, css=css, attrs=f' data-vector="{vector}"'))
    columns = ("vec", "name", "source", "times", "events", "first, decoded")
    return '<h2 id="interrupts">interrupts taken</h2>' + html_table(columns, rows, css="interrupts")


def _ending_css(history: History) -> str:
    if any(e.kind == "fault" for e in history.events):
        return "triple-fault"
    if any(map(_on_vector_8, history.events)):
        return "double-fault"
    return "no-fault"


def trace_page(history: History, *, accel: str) -> str:
    """``lhvdbg trace`` as one HTML page: the run, the PIC story, the timeline, the
    interrupts taken."""
    verdict = f"{len(history.events)} events; ended: {history.ended or 'unknown'}"
    body = [
        f"<h1>lhvdbg trace: {esc(history.kernel or 'kernel')}</h1>",
        meta(
            [
                ("accelerator", accel),
                ("QEMU", history.qemu_version or "unknown"),
                ("recorded", f"{history.seconds:.2f} s"),
                ("events", len(history.events)),
            ]
        ),
        f'<div class="verdict {_ending_css(history)}"><div class="outcome">trace</div>'
        f'<div class="text">{esc(verdict)}</div></div>',
        f'<p class="prose"><b>the 8259 PIC:</b> {esc(pic_story(history))}</p>',
        timeline_section(
            history, history_marks(history), title="timeline (in order)", anchor="timeline"
        ),
        _interrupts_section(history),
    ]
    return page(f"lhvdbg trace: {verdict}", [b for b in body if b])


def _events_text(events: tuple[HistoryEvent, ...]) -> str:
    if not events:
        return "-"
    return "; ".join(f"#{e.seq} {e.decoded}" for e in events)


def _difference_rows(comparison: Comparison) -> list[str]:
    rows = []
    first = comparison.first_divergence
    for n, diff in enumerate(comparison.differences, start=1):
        is_first = diff is first
        css = "difference-row" + (" problem matters" if diff.matters else "")
        badge = '<span class="badge stop">first divergence</span>' if is_first else ""
        sev = "matters" if diff.matters else "harmless"
        cells = [
            str(n),
            esc(diff.kind),
            f'<span class="sev {sev}">{sev}</span>',
            esc(_events_text(diff.good)),
            esc(_events_text(diff.bad)),
            badge + esc(diff.explanation),
        ]
        attrs = f' data-kind="{esc(diff.kind)}" data-matters="{"yes" if diff.matters else "no"}"'
        attrs += ' data-first="yes"' if is_first else ""
        rows.append(html_row(cells, css=css, attrs=attrs, raw=True))
    return rows


def comparison_marks(
    comparison: Comparison, side: str, own: Mapping[int, list[Mark]]
) -> dict[int, list[Mark]]:
    """``own`` marks plus those of the differences on ``side`` (``good``/``bad``): the
    first divergence's events, then every other difference's."""
    marks = {seq: list(m) for seq, m in own.items()}
    first = comparison.first_divergence

    def events(diff: Difference) -> tuple[HistoryEvent, ...]:
        return diff.good if side == "good" else diff.bad

    for diff in comparison.differences:
        if diff is first:
            mark = Mark("stop", "first divergence", "matters")
        elif diff.matters:
            mark = Mark("folded", f"{diff.kind} (matters)", "matters")
        else:
            mark = Mark("context", diff.kind, "info")
        for event in events(diff):
            marks.setdefault(event.seq, []).insert(0, mark)
    return marks


def comparison_page(comparison: Comparison, good_name: str, bad_name: str, *, accel: str) -> str:
    """``lhvdbg compare`` as one HTML page: the first divergence in words, every difference,
    then both timelines with the differing events marked."""
    first = comparison.first_divergence
    verdict = (
        f"first divergence: {first.explanation}"
        if first is not None
        else "no divergence that matters"
    )
    good, bad = comparison.good, comparison.bad
    css = "double-fault" if first is not None else "no-fault"
    differences = (
        '<h2 id="differences">differences (the first divergence first)</h2>'
        + html_table(
            ("#", "difference", "", f"good: {good_name}", f"this: {bad_name}", "why"),
            _difference_rows(comparison),
            css="differences",
        )
        if comparison.differences
        else '<h2 id="differences">differences</h2><p class="prose">none</p>'
    )
    body = [
        f"<h1>lhvdbg compare: {esc(good_name)} against {esc(bad_name)}</h1>",
        meta([("accelerator", accel), ("QEMU", bad.qemu_version or "unknown")]),
        meta([("good", f"{good_name}: {good.kernel}"), ("ended", good.ended)]),
        meta([("this", f"{bad_name}: {bad.kernel}"), ("ended", bad.ended)]),
        f'<div class="verdict {css}"><div class="outcome">compare</div>'
        f'<div class="text">{esc(verdict)}</div></div>',
        f'<p class="prose"><b>the 8259 PIC</b> — good: {esc(pic_story(good))}; '
        f"this: {esc(pic_story(bad))}</p>",
        differences,
        timeline_section(
            bad,
            comparison_marks(comparison, "bad", history_marks(bad)),
            title=f"this run: {bad_name}",
            anchor="timeline-bad",
            side="bad",
        ),
        timeline_section(
            good,
            comparison_marks(comparison, "good", history_marks(good)),
            title=f"the good run: {good_name}",
            anchor="timeline-good",
            side="good",
        ),
    ]
    return page(f"lhvdbg compare: {verdict}", [b for b in body if b])
