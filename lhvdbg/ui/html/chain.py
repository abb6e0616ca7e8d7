"""The chain as a timeline (SVG boxes, arrows) and as rows, from the report's JSON form.

Rows come from ``Report.to_json()``: a row with ``delivered: false`` is an exception raised
and folded into the next one (no delivery of its own); the first delivered vector 8 that
is not a software ``int`` is marked, and a triple fault ends the chain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lhvdbg.ui.html.markup import esc, html_row, html_table
from lhvdbg.x86.vectors import DOUBLE_FAULT

_BOX_CHARS = 24  # characters of monospace text that fit a timeline box


@dataclass(frozen=True)
class ChainRow:
    label: str
    data: Mapping[str, Any]
    kind: str  # context / delivered / folded / stop / triple

    @property
    def vector(self) -> int | None:
        value = self.data.get("vector")
        return value if isinstance(value, int) else None


def chain_rows(data: Mapping[str, Any]) -> list[ChainRow]:
    """Context, each step (delivered or folded; the first vector 8 marked), triple fault."""
    rows: list[ChainRow] = []
    if data.get("context"):
        rows.append(ChainRow("ctx", data["context"], "context"))
    stop_marked = False
    for n, step in enumerate(data.get("chain", []), start=1):
        delivered = step.get("delivered", True) is not False
        kind = "delivered" if delivered else "folded"
        if (
            not stop_marked
            and delivered
            and step.get("vector") == DOUBLE_FAULT
            and step.get("source") != "software"
        ):
            kind, stop_marked = "stop", True
        rows.append(ChainRow(str(n), step, kind))
    if data.get("triple_fault"):
        rows.append(ChainRow(str(len(data.get("chain", [])) + 1), {}, "triple"))
    return rows


def _event_text(step: Mapping[str, Any]) -> str:
    """``#GP General Protection``; a hardware or software vector by its title alone."""
    name, title = str(step.get("name", "")), str(step.get("title", ""))
    vector = step.get("vector")
    if isinstance(vector, int) and name == f"{vector:#04x}" and title:
        return title
    return f"{name} {title}".strip()


def _error_text(step: Mapping[str, Any]) -> str:
    code = step.get("error_code")
    decoded = step.get("error_code_decoded")
    if code is None:
        return "none" if step.get("source") == "exception" else "-"
    text = f"{code:#x}"
    if isinstance(decoded, Mapping):
        text += f": {decoded.get('text', '')}"
        if decoded.get("names"):
            text += f" — {decoded['names']}"
    return text


def _at_text(step: Mapping[str, Any]) -> str:
    rip = step.get("rip")
    symbol = step.get("symbol")
    rip_text = f"{rip:#x}" if isinstance(rip, int) else ""
    if symbol:
        return f"{symbol} ({rip_text})" if rip_text else str(symbol)
    return rip_text


def _kind_badges(row: ChainRow) -> str:
    badges = {
        "context": '<span class="badge context">last normal event</span>',
        "delivered": '<span class="badge delivered">delivered</span>',
        "folded": '<span class="badge folded">folded into the next</span>',
        "stop": '<span class="badge delivered">delivered</span>'
        '<span class="badge stop">first vector 8</span>',
        "triple": '<span class="badge triple">triple fault</span>',
    }[row.kind]
    if row.data.get("raised_next"):
        badges += '<span class="badge folded">its delivery raised the next</span>'
    if row.data.get("check"):
        badges += f'<span class="badge stop">check {esc(row.data["check"])}</span>'
    return badges


def _timeline_svg(rows: Sequence[ChainRow]) -> str:
    """The chain as boxes left to right, arrows between them."""
    if not rows:
        return ""
    box_w, box_h, gap = 196, 92, 26
    width = len(rows) * (box_w + gap) - gap + 8
    colours = {
        "context": ("#eceff1", "#90a4ae", ""),
        "delivered": ("#e3f2fd", "#1565c0", ""),
        "folded": ("#fff3e0", "#ef6c00", ' stroke-dasharray="6 4"'),
        "stop": ("#ffebee", "#c62828", ""),
        "triple": ("#c62828", "#7f0000", ""),
    }
    parts = [
        f'<svg class="timeline" viewBox="0 0 {width} {box_h + 8}" width="{width}" '
        f'height="{box_h + 8}" role="img" aria-label="the chain as a timeline">'
    ]
    for i, row in enumerate(rows):
        x = 4 + i * (box_w + gap)
        fill, stroke, dash = colours[row.kind]
        thick = 3 if row.kind in ("stop", "triple") else 1.5
        step = row.data
        if row.kind == "triple":
            lines = ["triple fault", "CPU reset / stop", "", ""]
            tip = "triple fault: the CPU gave up delivering and reset"
        else:
            vec = row.vector
            name = str(step.get("name", ""))
            head = f"{row.label} · {name}" + (
                f" {vec:#04x}" if vec is not None and name != f"{vec:#04x}" else ""
            )
            state = {
                "context": "normal",
                "delivered": "delivered",
                "folded": "folded",
                "stop": "1st vector 8",
            }[row.kind]
            code = step.get("error_code")
            lines = [
                head,
                f"{step.get('source', '')} · {state}",
                "error " + (f"{code:#x}" if isinstance(code, int) else "none"),
                str(step.get("symbol") or _at_text(step)),
            ]
            tip = f"{row.label}: {name} {step.get('title', '')}; {_error_text(step)}"
            tip += f"; at {_at_text(step)}"
        text_fill = "#ffffff" if row.kind == "triple" else "#1d2330"
        parts.append(
            f'<g class="event {row.kind}"><title>{esc(tip)}</title>'
            f'<rect x="{x}" y="4" width="{box_w}" height="{box_h}" rx="6" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="{thick}"{dash}/>'
        )
        for n, line in enumerate(lines):
            shown = line if len(line) <= _BOX_CHARS else line[: _BOX_CHARS - 1] + "…"
            weight = ' font-weight="700"' if n == 0 else ""
            parts.append(
                f'<text x="{x + 9}" y="{26 + n * 19}" font-size="{13 if n == 0 else 11.5}" '
                f'fill="{text_fill}"{weight}>{esc(shown)}</text>'
            )
        parts.append("</g>")
        if i + 1 < len(rows):
            ax = x + box_w
            mid = 4 + box_h // 2
            parts.append(
                f'<path d="M{ax + 3} {mid} H{ax + gap - 6} M{ax + gap - 12} {mid - 5} '
                f'L{ax + gap - 5} {mid} L{ax + gap - 12} {mid + 5}" stroke="#546e7a" '
                'stroke-width="2" fill="none"/>'
            )
    parts.append("</svg>")
    return "".join(parts)


def chain_section(data: Mapping[str, Any]) -> str:
    rows = chain_rows(data)
    if not rows:
        return '<h2 id="chain">chain</h2><p class="prose">no event in the chain</p>'
    body = []
    for row in rows:
        step = row.data
        vec = row.vector
        if row.kind == "triple":
            cells = [row.label, "-", "triple fault", "-", _kind_badges(row), "-", "-"]
        else:
            cells = [
                esc(row.label),
                esc(f"{vec:#04x}" if vec is not None else "-"),
                esc(_event_text(step)),
                esc(str(step.get("source", ""))),
                _kind_badges(row),
                esc(_error_text(step)),
                esc(_at_text(step)),
            ]
        attrs = f' data-kind="{row.kind}"' + (f' data-vector="{vec}"' if vec is not None else "")
        body.append(html_row(cells, css=f"chain-row {row.kind}", attrs=attrs, raw=True))
    columns = ("#", "vector", "event", "source", "delivered / folded", "error code (decoded)", "at")
    listing = html_table(columns, body, css="chain")
    return f'<h2 id="chain">chain</h2>{_timeline_svg(rows)}{listing}'
