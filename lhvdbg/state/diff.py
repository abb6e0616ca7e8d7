"""Field-by-field differences between two snapshots (or two CPU states).

Every value goes through its layout where one exists, so a difference names the field
that changed, not a raw word: ``cpu.flags.if``, ``cpu.cr0.pg``,
``cpu.segments.tr.flags.type``, ``gdt[0x20].type``, ``idt[8].offset``, ``tss.rsp0``,
``pic.master.irq_base``. Paths follow the snapshot JSON (docs/snapshot-format.md) and are
what ``provenance.scope`` lists: a difference is left out when either snapshot's scope
excludes its path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace

from lhvdbg.state.snapshot import Snapshot
from lhvdbg.state.system import tables_from_reader
from lhvdbg.x86.apic import vectors_of
from lhvdbg.x86.cpustate import SEGMENT_NAMES, CpuState, LapicState, PicChip, SegmentRegister
from lhvdbg.x86.layout import Decoded, Layout, diff
from lhvdbg.x86.registers import cr0_layout, cr4_layout, efer_layout, eflags_layout
from lhvdbg.x86.segments import TYPE_TSS_AVAILABLE, TYPE_TSS_BUSY, segment_descriptor_layout
from lhvdbg.x86.tables import GdtTable, IdtTable, SystemTables

__all__ = [
    "Difference",
    "diff_cpu",
    "diff_snapshots",
    "in_scope",
    "segment_flags",
]

Value = int | str | None


@dataclass(frozen=True)
class Difference:
    """One field that differs: its path, the value in ``a`` and in ``b`` (None: absent),
    and what the field means (with enum names of both values when it has them)."""

    path: str
    a: Value
    b: Value
    meaning: str

    def to_dict(self) -> dict[str, Value]:
        """JSON-ready form; integers as hex strings."""
        return {
            "path": self.path,
            "a": _json_value(self.a),
            "b": _json_value(self.b),
            "meaning": self.meaning,
        }


def _json_value(value: Value) -> Value:
    return f"{value:#x}" if isinstance(value, int) and not isinstance(value, bool) else value


# Segment-register flags: QEMU's word is the descriptor's high dword without base bits, so
# placing it at bit 32 decodes it through the descriptor layout (Intel SDM Vol. 3A §3.4.5).
_FLAG_FIELDS = ("type", "s", "dpl", "present", "avl", "l", "db", "g")
_QUIRK = (
    "; TCG shows a loaded TR as available (0x9) where KVM and the GDT show busy (0xb): "
    "not a real difference"
)


def segment_flags(seg: SegmentRegister, mode: str) -> Decoded:
    """The attribute bits of a segment register, decoded as descriptor fields."""
    return segment_descriptor_layout(mode).decode((seg.flags & 0xFFFFFFFF) << 32)


def _enum_meaning(meaning: str, a: Decoded | None, b: Decoded | None, name: str) -> str:
    names = [d.name_of(name) if d is not None and name in d.values else None for d in (a, b)]
    if any(names):
        return f"{meaning} ({names[0] or '-'} -> {names[1] or '-'})"
    return meaning


def _layout_diff(path: str, a: Decoded, b: Decoded) -> Iterator[Difference]:
    """Differences field by field, plus undeclared bits, between two decoded values."""
    for change in diff(a, b):
        if {change.old, change.new} == {0, None}:
            continue  # a field only one layout has, and zero there: nothing to tell
        layout: Layout = a.layout if a.layout.has_field(change.name) else b.layout
        meaning = layout.field(change.name).meaning
        yield Difference(
            f"{path}.{change.name}",
            change.old,
            change.new,
            _enum_meaning(meaning, a, b, change.name),
        )
    if a.unknown_bits != b.unknown_bits:
        yield Difference(path, a.raw, b.raw, "bits no field declares")


def _register_diff(path: str, layout: Layout, a: int, b: int) -> Iterator[Difference]:
    if a != b:
        yield from _layout_diff(path, layout.decode(a), layout.decode(b))


def _attributes(path: str, a: object, b: object, meanings: Mapping[str, str]) -> list[Difference]:
    """The attributes named in ``meanings`` that differ between ``a`` and ``b``."""
    pairs = ((name, getattr(a, name), getattr(b, name)) for name in meanings)
    return [Difference(f"{path}.{n}", va, vb, meanings[n]) for n, va, vb in pairs if va != vb]


def _entries(
    path: str, a: Mapping[str, int], b: Mapping[str, int], meaning: str
) -> list[Difference]:
    """The keys of two mappings (``a``'s order, then ``b``'s new ones) whose values differ."""
    keys = list(a) + [k for k in b if k not in a]
    return [
        Difference(f"{path}.{k}", a.get(k), b.get(k), meaning) for k in keys if a.get(k) != b.get(k)
    ]


def _presence(
    path: str, a: object, b: object, meaning: str, shown: tuple[Value, Value] | None = None
) -> list[Difference]:
    """A difference when exactly one of ``a``, ``b`` is None (shown as ``shown``, by default
    ``captured`` and None)."""
    if (a is None) == (b is None):
        return []
    va, vb = shown if shown is not None else (_have(a), _have(b))
    return [Difference(path, va, vb, meaning)]


_SEGMENT_MEANING = {
    "selector": "visible selector",
    "base": "base (hidden part)",
    "limit": "limit in bytes (hidden part)",
}


def _segment_diff(
    name: str, a: SegmentRegister, b: SegmentRegister, mode_a: str, mode_b: str
) -> Iterator[Difference]:
    path = f"cpu.segments.{name}"
    yield from _attributes(path, a, b, _SEGMENT_MEANING)
    if a.flags == b.flags:
        return
    fa, fb = segment_flags(a, mode_a), segment_flags(b, mode_b)
    for d in _layout_diff(f"{path}.flags", fa, fb):
        if d.path.rsplit(".", 1)[-1] not in (*_FLAG_FIELDS, "flags"):
            continue  # limit bits 16-19 also sit in the flags word; the limit says it
        if (
            name == "tr"
            and d.path.endswith(".type")
            and {d.a, d.b} == {TYPE_TSS_AVAILABLE, TYPE_TSS_BUSY}
        ):
            d = Difference(d.path, d.a, d.b, d.meaning + _QUIRK)
        yield d


def _plain(path: str, a: int, b: int, meaning: str) -> list[Difference]:
    return [Difference(path, a, b, meaning)] if a != b else []


def diff_cpu(a: CpuState, b: CpuState) -> list[Difference]:
    """Differences between two CPU states (registers, segments, descriptor-table
    registers, flags and control registers through their layouts)."""
    out: list[Difference] = []
    if a.mode != b.mode:
        out.append(Difference("cpu.mode", a.mode, b.mode, "operating mode"))
    if a.cpl != b.cpl:
        out.append(Difference("cpu.cpl", a.cpl, b.cpl, "current privilege level"))
    if a.halted != b.halted:
        out.append(Difference("cpu.halted", _opt_bool(a.halted), _opt_bool(b.halted), "HLT"))
    out += _plain("cpu.ip", a.ip, b.ip, "instruction pointer")
    out += _entries("cpu.gprs", a.gprs, b.gprs, "general register")
    out += _register_diff("cpu.flags", eflags_layout(), a.flags, b.flags)
    for name in SEGMENT_NAMES:
        sa, sb = a.segments.get(name), b.segments.get(name)
        if sa is None or sb is None:
            out += _presence(f"cpu.segments.{name}", sa, sb, "segment", (_seg(sa), _seg(sb)))
        else:
            out += _segment_diff(name, sa, sb, a.mode, b.mode)
    for table in ("gdtr", "idtr"):
        meanings = {
            "base": f"{table.upper()} linear base",
            "limit": f"{table.upper()} limit (last valid byte offset)",
        }
        out += _attributes(f"cpu.{table}", getattr(a, table), getattr(b, table), meanings)
    out += _register_diff("cpu.cr0", cr0_layout(), a.cr0, b.cr0)
    out += _plain("cpu.cr2", a.cr2, b.cr2, "page-fault linear address")
    out += _plain("cpu.cr3", a.cr3, b.cr3, "paging-structure base")
    out += _register_diff("cpu.cr4", cr4_layout(), a.cr4, b.cr4)
    out += _register_diff("cpu.efer", efer_layout(), a.efer, b.efer)
    return out


def _opt_bool(value: bool | None) -> Value:
    return None if value is None else str(value).lower()


def _seg(seg: SegmentRegister | None) -> Value:
    return None if seg is None else f"{seg.selector:#06x}"


def _slots_diff(
    name: str,
    a: GdtTable | IdtTable | None,
    b: GdtTable | IdtTable | None,
    path_of: Callable[[int], str],
    kind_meaning: str,
) -> Iterator[Difference]:
    """GDT or IDT (``name``) slot by slot: presence, kind, then the decoded fields."""
    if a is None or b is None:
        yield from _presence(name, a, b, f"{name.upper()} bytes captured")
        return
    for i in range(max(len(a.entries), len(b.entries))):
        ea = a.entries[i] if i < len(a.entries) else None
        eb = b.entries[i] if i < len(b.entries) else None
        path = path_of(i)
        if ea is None or eb is None:
            yield Difference(
                path,
                ea.kind if ea else None,
                eb.kind if eb else None,
                f"{name.upper()} slot present",
            )
            continue
        if ea.raw == eb.raw and ea.kind == eb.kind:
            continue
        if ea.kind != eb.kind:
            yield Difference(f"{path}.kind", ea.kind, eb.kind, kind_meaning)
        if ea.decoded is not None and eb.decoded is not None:
            yield from _layout_diff(path, ea.decoded, eb.decoded)


def _have(value: object) -> str | None:
    return "captured" if value is not None else None


def _tables_diff(a: SystemTables, b: SystemTables) -> Iterator[Difference]:
    yield from _slots_diff("gdt", a.gdt, b.gdt, lambda i: f"gdt[{i * 8:#x}]", "what the slot holds")
    yield from _slots_diff("idt", a.idt, b.idt, lambda i: f"idt[{i}]", "gate state")
    if a.tss is None or b.tss is None:
        why = (a.unavailable.get("tss", _have(a.tss)), b.unavailable.get("tss", _have(b.tss)))
        yield from _presence("tss", a.tss, b.tss, "TSS body", why)
        return
    yield from _layout_diff("tss", a.tss, b.tss)


_PIC_MEANING = {
    "irr": "interrupt request register (IRQs raised)",
    "imr": "interrupt mask register (IRQs masked)",
    "isr": "in-service register (IRQs being handled)",
    "irq_base": "vector of IRQ 0 on this chip (ICW2)",
    "hprio": "priority rotation",
    "init_state": "initialisation-sequence state",
}


def _pic_diff(chip: str, a: PicChip, b: PicChip) -> list[Difference]:
    path = f"pic.{chip}"
    return _attributes(path, a, b, _PIC_MEANING) + _entries(
        path, a.extra, b.extra, "QEMU 8259 state"
    )


_LAPIC_MEANING = {
    "apic_id": "APIC ID",
    "svr": "spurious-interrupt vector register (bit 8: APIC enabled)",
    "lvt_timer": "LVT timer (vector, mask bit 16, mode bits 17-18)",
    "timer_initial": "timer initial count",
    "timer_current": "timer current count",
    "timer_divide": "timer divide configuration",
    "isr": "in-service vectors",
    "irr": "requested vectors",
    "tmr": "level-triggered vectors",
    "tpr": "task priority",
    "ppr": "processor priority",
}


def _vectors(bitmap: int) -> str:
    found = vectors_of(bitmap)
    return "{" + ", ".join(str(v) for v in found) + "}" if found else "none"


def _lapic_diff(a: LapicState, b: LapicState) -> Iterator[Difference]:
    for d in _attributes("lapic", a, b, _LAPIC_MEANING):
        name = d.path.removeprefix("lapic.")
        if name in ("isr", "irr", "tmr"):
            shown = f"{_vectors(getattr(a, name))} -> {_vectors(getattr(b, name))}"
            d = replace(d, meaning=f"{d.meaning} ({shown})")
        yield d
    yield from _entries("lapic.lvt", a.lvt, b.lvt, "local vector table entry")
    yield from _entries("lapic", a.extra, b.extra, "APIC register")


def in_scope(path: str, scope: Iterable[str]) -> bool:
    """Whether ``path`` is vouched for by ``scope`` (empty scope: everything).

    A path is in scope if it equals an entry, lies under one (``gdt[0x8].type`` under
    ``gdt``), or is an ancestor of one (``pic`` for ``pic.master.irq_base``).
    """
    entries = list(scope)
    if not entries:
        return True
    return any(_under(path, e) or _under(e, path) for e in entries)


def _under(path: str, prefix: str) -> bool:
    return path == prefix or (path.startswith(prefix) and path[len(prefix)] in ".[")


def diff_snapshots(a: Snapshot, b: Snapshot) -> list[Difference]:
    """Every difference between ``a`` and ``b`` that both snapshots' scopes allow, in the
    order: architecture, CPU, GDT, IDT, TSS, PIC, LAPIC."""
    out: list[Difference] = []
    if a.arch != b.arch:
        out.append(Difference("arch", a.arch, b.arch, "architecture of the kernel"))
    out += diff_cpu(a.cpu, b.cpu)
    out += _tables_diff(tables_from_reader(a.cpu, a.read), tables_from_reader(b.cpu, b.read))
    if a.pic is not None and b.pic is not None:
        out += _pic_diff("master", a.pic.master, b.pic.master)
        out += _pic_diff("slave", a.pic.slave, b.pic.slave)
    else:
        out += _presence("pic", a.pic, b.pic, "8259 PIC state")
    if a.lapic is not None and b.lapic is not None:
        out += _lapic_diff(a.lapic, b.lapic)
    else:
        out += _presence("lapic", a.lapic, b.lapic, "local APIC state")
    return [
        d
        for d in out
        if in_scope(d.path, a.provenance.scope) and in_scope(d.path, b.provenance.scope)
    ]
