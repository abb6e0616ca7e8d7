"""The vector map: the 256 vectors as a 16x16 SVG grid.

Each cell shows the IDT gate (present / not present / beyond the IDT limit / not
captured), whether the vector is a CPU exception (0x00-0x1f, Intel SDM Vol. 3A §6.2),
where the 8259 PICs (``info pic`` irq_base) and the local APIC (LVT entries with fixed
delivery, the spurious vector; SDM Vol. 3A §11.5.1, §11.9) deliver, the vectors of the
chain, and the entries with a problem. A device on an exception vector is framed in red.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lhvdbg.state.snapshot import Snapshot
from lhvdbg.ui.html.markup import esc
from lhvdbg.x86.interrupt_sources import interrupt_sources
from lhvdbg.x86.tables import SystemTables
from lhvdbg.x86.vectors import FIRST_USER_VECTOR, vector_name

EXCEPTION_VECTORS = range(FIRST_USER_VECTOR)  # the CPU's (Intel SDM Vol. 3A §6.2)


@dataclass(frozen=True)
class _Deliverer:
    name: str
    vectors: tuple[int, ...]
    css: str
    note: str = ""


def _deliverers(snapshot: Snapshot | None) -> list[_Deliverer]:
    """Where the PICs and the local APIC deliver (from ``info pic`` / ``info lapic``)."""
    out: list[_Deliverer] = []
    if snapshot is None:
        return out
    pic = snapshot.pic
    if pic is not None:
        pic_sources = interrupt_sources(pic)  # the one vector map: IRQ2 is the cascade
        for name, chip, first, css in (
            ("PIC master", pic.master, 0, "pic"),
            ("PIC slave", pic.slave, 8, "slave"),
        ):
            lines = [first + n for n in range(8) if chip.imr >> n & 1]
            note = f"IRQ{first}-{first + 7}; masked: " + (
                ", ".join(f"IRQ{n}" for n in lines) if lines else "none"
            )
            vectors = tuple(s.vector for s in pic_sources if s.chip == name.split()[1])
            out.append(_Deliverer(name, vectors, css, note))
    lapic = snapshot.lapic
    if lapic is not None:
        state = "enabled" if lapic.enabled else "software-disabled"
        for source in interrupt_sources(None, lapic):
            entry = source.source.removeprefix("lapic-").removeprefix("lvt-")
            if entry == "spurious":
                out.append(_Deliverer("LAPIC spurious", (source.vector,), "lapic", f"APIC {state}"))
                continue
            if source.masked and source.vector == 0:
                continue  # an entry at its reset value
            note = f"APIC {state}" + (", masked" if source.masked else "")
            out.append(_Deliverer(f"LAPIC {entry}", (source.vector,), "lapic", note))
    return out


def _gate_state(tables: SystemTables | None, vector: int) -> tuple[str, str]:
    """``(css class, words)`` for one vector's IDT slot."""
    idt = tables.idt if tables is not None else None
    if idt is None:
        return "unknown", "IDT not captured"
    if not idt.covers(vector):
        return "beyond", f"beyond the IDT limit {idt.limit:#x}"
    gate = idt.gate(vector)
    if gate is None:
        return "unknown", "gate not captured"
    if gate.kind == "gate":
        v = gate.decoded.values
        kind = gate.decoded.name_of("type") or f"type {v['type']:#x}"
        return "present", f"present: {kind} -> {v['selector']:#06x}:{v['offset']:#x}"
    return "absent", "not present"


def vector_map(
    tables: SystemTables | None,
    snapshot: Snapshot | None,
    chain_vectors: Iterable[int] = (),
    problem_vectors: Iterable[int] = (),
) -> str:
    """A 16x16 map of vectors 0x00-0xff."""
    deliverers = _deliverers(snapshot)
    by_vector: dict[int, list[_Deliverer]] = {}
    for d in deliverers:
        for v in d.vectors:
            by_vector.setdefault(v, []).append(d)
    in_chain = set(chain_vectors)
    flagged = set(problem_vectors)
    cell_w, cell_h, left, top = 46, 34, 44, 22
    width, height = left + 16 * cell_w + 4, top + 16 * cell_h + 4
    fills = {"present": "#c8e6c9", "absent": "#eceff1", "beyond": "#90a4ae", "unknown": "#ffffff"}
    band = {"pic": "#ff9800", "slave": "#fdd835", "lapic": "#8e24aa"}
    parts = [
        f'<svg class="vector-map" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="vector map 0x00 to 0xff">'
    ]
    for col in range(16):
        parts.append(
            f'<text x="{left + col * cell_w + cell_w / 2}" y="15" font-size="11" '
            f'text-anchor="middle" fill="#5b6474">_{col:x}</text>'
        )
    for row in range(16):
        parts.append(
            f'<text x="{left - 6}" y="{top + row * cell_h + cell_h / 2 + 4}" font-size="11" '
            f'text-anchor="end" fill="#5b6474">{row:x}_</text>'
        )
    for vector in range(256):
        x = left + (vector % 16) * cell_w
        y = top + (vector // 16) * cell_h
        state, words = _gate_state(tables, vector)
        here = by_vector.get(vector, [])
        classes = ["vec", state]
        tip = [f"{vector:#04x} {vector_name(vector)}", f"gate {words}"]
        exception = vector in EXCEPTION_VECTORS
        if exception:
            classes.append("exception")
        conflict = exception and any(d.css in ("pic", "slave", "lapic") for d in here)
        if conflict:
            classes.append("conflict")
            tip.append("a device delivers on a CPU exception vector")
        for d in here:
            classes.append(d.css)
            tip.append(f"{d.name} delivers here ({d.note})")
        if vector in in_chain:
            classes.append("in-chain")
            tip.append("in the chain")
        if vector in flagged:
            classes.append("problem")
        stroke, thick = (
            ("#c62828", 3) if conflict else ("#1565c0", 1.6) if exception else ("#b0bec5", 1)
        )
        parts.append(
            f'<g class="{" ".join(classes)}" data-vector="{vector}"><title>'
            f"{esc('; '.join(tip))}</title>"
            f'<rect x="{x + 1}" y="{y + 1}" width="{cell_w - 2}" height="{cell_h - 2}" '
            f'fill="{fills[state]}" stroke="{stroke}" stroke-width="{thick}"/>'
        )
        if state == "beyond":
            parts.append(
                f'<path d="M{x + 1} {y + cell_h - 1} L{x + cell_w - 1} {y + 1}" '
                'stroke="#ffffff" stroke-width="1.2"/>'
            )
        for n, d in enumerate(here[:2]):
            parts.append(
                f'<rect x="{x + 2}" y="{y + cell_h - 8 - n * 6}" width="{cell_w - 4}" '
                f'height="5" fill="{band[d.css]}"/>'
            )
        label_fill = "#ffffff" if state == "beyond" else "#1d2330"
        weight = ' font-weight="700"' if exception else ""
        parts.append(
            f'<text x="{x + cell_w / 2}" y="{y + 17}" font-size="12" text-anchor="middle" '
            f'fill="{label_fill}"{weight}>{vector:02x}</text>'
        )
        if vector in in_chain:
            parts.append(f'<circle cx="{x + cell_w - 8}" cy="{y + 8}" r="4.5" fill="#c62828"/>')
        if vector in flagged:
            parts.append(f'<path d="M{x + 3} {y + 3} h9 l-9 9 z" fill="#c62828"/>')
        parts.append("</g>")
    parts.append("</svg>")
    legend = (
        '<div class="legend">'
        '<span><span class="swatch" style="background:#c8e6c9"></span>gate present</span>'
        '<span><span class="swatch" style="background:#eceff1"></span>gate not present</span>'
        '<span><span class="swatch" style="background:#90a4ae"></span>beyond the IDT limit</span>'
        '<span><span class="swatch" style="background:#fff"></span>not captured</span>'
        '<span><span class="swatch" style="background:#fff;border:2px solid #1565c0"></span>'
        "CPU exception vector (0x00-0x1f)</span>"
        '<span><span class="swatch" style="background:#ff9800"></span>PIC master</span>'
        '<span><span class="swatch" style="background:#fdd835"></span>PIC slave</span>'
        '<span><span class="swatch" style="background:#8e24aa"></span>local APIC</span>'
        '<span><span class="swatch" style="background:#fff;border:3px solid #c62828"></span>'
        "a device on an exception vector</span>"
        '<span><span class="swatch" style="background:#c62828;border-radius:50%"></span>'
        "in the chain</span>"
        '<span><span class="swatch" '
        'style="background:linear-gradient(135deg,#c62828 50%,#fff 50%)"></span>'
        "entry with a problem</span></div>"
    )
    notes = []
    for d in deliverers:
        span = (
            f"{d.vectors[0]:#04x}-{d.vectors[-1]:#04x}"
            if len(d.vectors) > 1
            else f"{d.vectors[0]:#04x}"
        )
        inside = any(v in EXCEPTION_VECTORS for v in d.vectors)
        warn = " — <b>inside the CPU exception range 0x00-0x1f</b>" if inside else ""
        notes.append(f"<li>{esc(d.name)} delivers on {esc(span)} ({esc(d.note)}){warn}</li>")
    idt = tables.idt if tables is not None else None
    if idt is not None:
        covered = (idt.limit + 1) // idt.entry_size
        span = f"vectors 0x00-{covered - 1:#04x}" if covered else "no vector"
        notes.append(
            f"<li>IDT at {idt.base:#x}, limit {idt.limit:#x}: {span} inside the limit</li>"
        )
    listing = f'<ul class="prose map-notes">{"".join(notes)}</ul>' if notes else ""
    return f'<h2 id="vectors">vector map 0x00-0xff</h2>{"".join(parts)}{legend}{listing}'
