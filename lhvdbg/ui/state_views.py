"""Rendering of CPU state: registers, segments, control registers, PIC, LAPIC, diffs.

The GDT/IDT/TSS/page-walk/layout tables live in :mod:`lhvdbg.ui.tables`; this module does
the register-shaped views. Every view takes an optional ``previous`` state (the shell keeps
the one of the last stop) and marks what changed with ``*`` and a ``was`` column, so the
plain-text output (colour off) shows it too. Decoding goes through the layouts in
:mod:`lhvdbg.x86`; nothing here shifts bits by hand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from lhvdbg.state.diff import Difference, segment_flags
from lhvdbg.state.snapshot import Snapshot
from lhvdbg.ui.tables import FitTable, bullet
from lhvdbg.x86.apic import divide_layout, lvt_layout, lvt_timer_layout, svr_layout, vectors_of
from lhvdbg.x86.cpustate import SEGMENT_NAMES, CpuState, LapicState, PicChip, PicState
from lhvdbg.x86.describe import describe_flags
from lhvdbg.x86.layout import Decoded
from lhvdbg.x86.registers import cr0_layout, cr4_layout, efer_layout, eflags_layout
from lhvdbg.x86.tables import NO_IDT_YET, idtr_holds_ivt, tr_never_loaded
from lhvdbg.x86.vectors import FIRST_USER_VECTOR

__all__ = [
    "render_cregs",
    "render_diff",
    "render_lapic",
    "render_pic",
    "render_provenance",
    "render_regs",
    "render_sregs",
]

_CHANGED = "bold yellow"
_SEGMENT_LABELS = {"ldtr": "ldt", "tr": "tr"}


def _table(*columns: str) -> Table:
    table = FitTable(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for name in columns:
        table.add_column(name, no_wrap=True)
    return table


class _Rows:
    """Adds rows of ``name, cells...`` and, when comparing, a ``was`` cell for changes."""

    def __init__(self, title: str, table: Table, comparing: bool) -> None:
        self.title = title
        self.table = table
        self.comparing = comparing
        if comparing:
            table.add_column("was", no_wrap=True)

    def add(self, name: str, cells: Sequence[str], was: str | None = None) -> None:
        changed = was is not None
        style = _CHANGED if changed else ""
        row: list[str | Text] = [Text(f"*{name}" if changed else name, style=style)]
        row += [Text(cell, style=style) for cell in cells]
        if self.comparing:
            row.append(was or "")
        self.table.add_row(*row)

    def render(self, *notes: RenderableType) -> RenderableType:
        """The title on its own line (never wrapped into the table's width), the table,
        then any notes."""
        return Group(Text(self.title, style="bold"), self.table, *notes)


def _hex_width(name: str) -> int:
    return 16 if name.startswith("r") else 8


def render_regs(
    cpu: CpuState,
    previous: CpuState | None = None,
    *,
    symbols: Mapping[str, int] | None = None,
) -> RenderableType:
    """The instruction pointer, (R)EFLAGS with the set flags named, and the GPRs; the
    instruction, stack and frame pointers named by ``symbols`` (``<pit_init+0x9>``)."""
    from lhvdbg.state.symbols import symbolize

    def named(name: str, value: int) -> str:
        if not symbols or name not in ("rip", "eip", "rsp", "esp", "rbp", "ebp"):
            return ""
        found = symbolize(value, symbols)
        return f"<{found}>" if found else ""

    wide = any(name.startswith("r") for name in cpu.gprs)
    halted = ", halted" if cpu.halted else ""
    title = f"registers ({cpu.mode} mode, CPL {cpu.cpl}{halted})"
    rows = _Rows(title, _table("reg", "value", "decoded"), previous is not None)
    width = 16 if wide else 8

    def was(old: int | None, new: int, digits: int) -> str | None:
        if previous is None or old == new:
            return None
        return "-" if old is None else f"{old:#0{digits + 2}x}"

    ip_name, flags_name = ("rip", "rflags") if wide else ("eip", "eflags")
    rows.add(
        ip_name,
        [f"{cpu.ip:#0{width + 2}x}", named(ip_name, cpu.ip)],
        was(previous.ip if previous else None, cpu.ip, width),
    )
    rows.add(
        flags_name,
        [f"{cpu.flags:#010x}", describe_flags(eflags_layout().decode(cpu.flags))],
        was(previous.flags if previous else None, cpu.flags, 8),
    )
    for name, value in cpu.gprs.items():
        digits = _hex_width(name)
        old = previous.gprs.get(name) if previous is not None else None
        rows.add(name, [f"{value:#0{digits + 2}x}", named(name, value)], was(old, value, digits))
    return rows.render()


def _segment_cells(name: str, cpu: CpuState) -> list[str]:
    seg = cpu.segments[name]
    flags = segment_flags(seg, cpu.mode)
    v = flags.values
    attrs = " ".join(n.upper() for n in ("l", "db", "g", "avl") if v[n]).replace("DB", "D")
    return [
        f"{seg.selector:#06x}",
        f"{seg.base:#x}",
        f"{seg.limit:#x}",
        f"{seg.flags:#010x}",
        flags.name_of("type") or "",
        str(v["dpl"]),
        "P" if v["present"] else "-",
        attrs,
    ]


_SEGMENT_PARTS = (
    ("selector", "sel", "{:#06x}"),
    ("base", "base", "{:#x}"),
    ("limit", "limit", "{:#x}"),
    ("flags", "flags", "{:#010x}"),
)


def _old_parts(old: object, new: object, parts: Sequence[tuple[str, str, str]]) -> str:
    """``label old-value`` for each attribute (name, label, format) that changed."""
    return " ".join(
        f"{label} {fmt.format(getattr(old, name))}"
        for name, label, fmt in parts
        if getattr(old, name) != getattr(new, name)
    )


def render_sregs(cpu: CpuState, previous: CpuState | None = None) -> RenderableType:
    """Segment registers with their hidden parts (base, limit, attributes), LDTR, TR, GDTR
    and IDTR; notes TR in its reset state."""
    title = f"segment registers ({cpu.mode} mode)"
    columns = ("seg", "selector", "base", "limit", "flags", "type", "dpl", "P", "attrs")
    rows = _Rows(title, _table(*columns), previous is not None)
    for name in SEGMENT_NAMES:
        if name not in cpu.segments:
            continue
        cells = _segment_cells(name, cpu)
        old = previous.segments.get(name) if previous is not None else None
        changed = previous is not None and old != cpu.segments[name]
        was = None
        if changed:
            was = "-" if old is None else _old_parts(old, cpu.segments[name], _SEGMENT_PARTS)
        rows.add(_SEGMENT_LABELS.get(name, name), cells, was)
    for name in ("gdtr", "idtr"):
        reg = getattr(cpu, name)
        old = getattr(previous, name) if previous is not None else None
        was = f"{old.base:#x} {old.limit:#x}" if old is not None and old != reg else None
        rows.add(name, ["", f"{reg.base:#x}", f"{reg.limit:#x}", "", "", "", "", ""], was)
    notes: list[RenderableType] = []
    if idtr_holds_ivt(cpu.mode, cpu.idtr.base, cpu.idtr.limit):
        notes.append(bullet(NO_IDT_YET, "note: ", style="yellow"))
    if tr_never_loaded(cpu.tr):
        notes.append(
            bullet(
                "TR was never loaded (selector 0, base 0, limit 0xffff is the reset "
                "state; QEMU still labels it busy)",
                "note: ",
                style="yellow",
            )
        )
    return rows.render(*notes)


_CONTROL = (
    ("cr0", cr0_layout),
    ("cr2", None),
    ("cr3", None),
    ("cr4", cr4_layout),
    ("efer", efer_layout),
)


def render_cregs(cpu: CpuState, previous: CpuState | None = None) -> RenderableType:
    """CR0, CR2, CR3, CR4 and EFER with the set bits named through their layouts."""
    rows = _Rows("control registers", _table("reg", "value", "set"), previous is not None)
    for name, layout in _CONTROL:
        value: int = getattr(cpu, name)
        decoded = describe_flags(layout().decode(value)) if layout is not None else ""
        old: int | None = getattr(previous, name) if previous is not None else None
        was = f"{old:#x}" if old is not None and old != value else None
        digits = 8 if name in ("cr0", "cr4") else 16 if cpu.mode in ("long", "compat") else 8
        rows.add(name, [f"{value:#0{digits + 2}x}", decoded], was)
    return rows.render()


def _bits8(value: int) -> str:
    return f"{value:#04x} {value:08b}"


def _irq_lines(value: int, first: int) -> str:
    lines = [f"IRQ{first + n}" for n in range(8) if value >> n & 1]
    return " ".join(lines) if lines else "-"


def render_pic(pic: PicState, previous: PicState | None = None) -> RenderableType:
    """Both 8259As: IRQ base and the vectors it gives, IRR/IMR/ISR in hex and bits."""
    rows = _Rows(
        "8259 PICs",
        _table("chip", "irq_base", "vectors", "irr", "imr", "isr", "in service"),
        previous is not None,
    )
    notes: list[RenderableType] = []
    for name, first, chip, old in (
        ("master", 0, pic.master, previous.master if previous else None),
        ("slave", 8, pic.slave, previous.slave if previous else None),
    ):
        vectors = f"{chip.irq_base:#04x}-{chip.irq_base + 7:#04x}"
        cells = [
            f"{chip.irq_base:#04x}",
            vectors,
            _bits8(chip.irr),
            _bits8(chip.imr),
            _bits8(chip.isr),
            _irq_lines(chip.isr, first),
        ]
        rows.add(name, cells, _chip_was(chip, old))
        if chip.irq_base < FIRST_USER_VECTOR:
            notes.append(
                bullet(
                    f"{name} IRQ{first}-{first + 7} arrive on vectors {vectors}, inside "
                    "the CPU exception range 0x00-0x1f (not remapped)",
                    "note: ",
                    style="yellow",
                )
            )
    return rows.render(*notes)


_PIC_PARTS = (("irq_base", "base"), ("irr", "irr"), ("imr", "imr"), ("isr", "isr"))


def _chip_was(chip: PicChip, old: PicChip | None) -> str | None:
    if old is None or old == chip:
        return None
    parts = [(name, label, "{:#04x}") for name, label in _PIC_PARTS]
    return _old_parts(old, chip, parts) or "other state"


def _vector_list(bitmap: int) -> str:
    found = vectors_of(bitmap)
    return " ".join(f"{v:#04x}" for v in found) if found else "none"


def _lvt_text(decoded: Decoded) -> str:
    v = decoded.values
    parts = [f"vector {v['vector']:#04x}"]
    if "mode" in v:
        parts.append(decoded.name_of("mode") or "")
    if "delivery" in v:
        parts.append(decoded.name_of("delivery") or "")
        parts.append(decoded.name_of("trigger") or "")
    parts.append("masked" if v["masked"] else "unmasked")
    if v["pending"]:
        parts.append("pending")
    return ", ".join(p for p in parts if p)


def _lapic_rows(lapic: LapicState) -> list[tuple[str, str, str]]:
    svr = svr_layout().decode(lapic.svr & 0xFFFFFFFF)
    divide = divide_layout().decode(lapic.timer_divide & 0xFFFFFFFF)
    rows = [
        ("apic id", str(lapic.apic_id), ""),
        (
            "svr",
            f"{lapic.svr:#010x}",
            ("enabled" if svr.values["enabled"] else "DISABLED")
            + f", spurious vector {svr.values['vector']:#04x}",
        ),
        (
            "lvt timer",
            f"{lapic.lvt_timer:#010x}",
            _lvt_text(lvt_timer_layout().decode(lapic.lvt_timer)),
        ),
        ("timer initial", str(lapic.timer_initial), ""),
        ("timer current", str(lapic.timer_current), ""),
        ("timer divide", f"{lapic.timer_divide:#x}", divide.name_of("divide") or ""),
        ("isr", _vector_list(lapic.isr), "in service"),
        ("irr", _vector_list(lapic.irr), "requested"),
        ("tmr", _vector_list(lapic.tmr), "level-triggered"),
        ("tpr", f"{lapic.tpr:#04x}", "task priority"),
        ("ppr", f"{lapic.ppr:#04x}", "processor priority"),
    ]
    for name, value in lapic.lvt.items():
        rows.append((f"lvt {name}", f"{value:#010x}", _lvt_text(lvt_layout().decode(value))))
    return rows


def render_lapic(lapic: LapicState, previous: LapicState | None = None) -> RenderableType:
    """The local APIC: enable, timer (LVT, counts, divide), ISR/IRR/TMR vectors, TPR/PPR,
    the other LVT entries."""
    rows = _Rows("local APIC", _table("register", "value", "decoded"), previous is not None)
    old_rows = {name: value for name, value, _ in _lapic_rows(previous)} if previous else {}
    for name, value, decoded in _lapic_rows(lapic):
        old = old_rows.get(name)
        was = None
        if previous is not None and old != value:
            was = old if old is not None else "-"
        rows.add(name, [value, decoded], was)
    return rows.render()


def _value_text(value: int | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:#x}"
    return value


def render_diff(
    diffs: Sequence[Difference], a_label: str = "a", b_label: str = "b"
) -> RenderableType:
    """Differences as a table: path, value in A, value in B, meaning."""
    if not diffs:
        return Text(f"no differences between {a_label} and {b_label}")
    table = _table("path", a_label, b_label)
    table.add_column("meaning", ratio=1, overflow="fold")
    for d in diffs:
        table.add_row(d.path, _value_text(d.a), _value_text(d.b), d.meaning)
    return Group(Text(f"{len(diffs)} differences", style="bold"), table)


def render_provenance(snapshot: Snapshot, label: str) -> RenderableType:
    """One header block: where a snapshot came from."""
    p = snapshot.provenance
    parts = [f"{label}: {snapshot.arch}, {p.source}"]
    for what, value in (
        ("captured", p.captured_at),
        ("qemu", p.qemu_version),
        ("accel", p.accel),
        ("kernel", p.kernel_path),
        ("stopped", p.stop_reason),
    ):
        if value:
            parts.append(f"{what} {value}")
    lines: list[RenderableType] = [Text(", ".join(parts), style="bold")]
    if p.scope:
        lines.append(Text("scope: " + " ".join(p.scope)))
    return Group(*lines)
