"""Compare a target's TR, TSS descriptor and TSS with a known-good reference.

Every difference is weighed against what the CPU needs *now*: the TSS is read only on a
privilege change (RSP0/ESP0, SS0 — Intel SDM Vol. 3A §6.12.1, §8.7), for a gate with a
non-zero IST (§6.14.5), or a task switch (task gates, §8.3). A difference the CPU cannot
hit is listed with ``matters=False`` and says why — LHV's null TR was real but harmless.

Across architectures (Pebbles is 32-bit, LHV amd64 64-bit) corresponding fields are paired
(ESP0↔RSP0, ESP1/2↔RSP1/2, I/O map base) and what has no counterpart (SS0..SS2 in a 64-bit
TSS, IST1..7 in a 32-bit one) is said so in ``notes``. QEMU quirks handled: TR's reset
state (selector 0, base 0, limit 0xFFFF, type busy) is "never loaded" although QEMU prints
it ``TSS64-busy``; after ``ltr`` TCG shows the TR type available (0x9) where KVM shows busy
(0xB), so the two compare equal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lhvdbg.diagnose.events import ChainEvent, InterruptEvent
from lhvdbg.errors import LhvdbgError
from lhvdbg.state.snapshot import Snapshot
from lhvdbg.state.system import tables_from_reader
from lhvdbg.x86.cpustate import CpuState
from lhvdbg.x86.cpuview import is_canonical
from lhvdbg.x86.layout import Decoded
from lhvdbg.x86.segments import (
    TYPE_TASK_GATE,
    TYPE_TSS_AVAILABLE,
    TYPE_TSS_BUSY,
    is_code,
    is_data,
    is_tss_type,
    limit_bytes,
    selector_index,
)
from lhvdbg.x86.tables import NO_IDT_YET, GdtEntry, SystemTables
from lhvdbg.x86.tss import (
    ESP0_SS0_MIN_LIMIT,
    TSS_FULL_LIMIT,
    decode_tss,
    ist_min_limit,
    rsp_min_limit,
)

__all__ = ["Difference", "TssDiff", "TssNeeds", "diff_tss", "snapshot_tables", "tss_needs"]

Value = int | bool | str | None


@dataclass(frozen=True)
class Difference:
    """One field that differs from the reference, with whether the CPU needs it now."""

    field: str  # dotted path: tr.selector, gdt[0x20].type, tss.rsp0
    reference: Value
    actual: Value
    explanation: str
    matters: bool

    def to_json(self) -> dict[str, Any]:
        """JSON form (numbers stay integers)."""
        return {
            "field": self.field,
            "reference": self.reference,
            "actual": self.actual,
            "explanation": self.explanation,
            "matters": self.matters,
        }


def vector_ranges(vectors: Sequence[int]) -> str:
    """``0x00-0x20, 0x30`` for a list of vectors."""
    out: list[str] = []
    ordered = sorted(set(vectors))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        first, last = ordered[i], ordered[j]
        out.append(f"{first:#04x}" if first == last else f"{first:#04x}-{last:#04x}")
        i = j + 1
    return ", ".join(out)


@dataclass(frozen=True)
class TssNeeds:
    """What the CPU would read from the TSS now, and why.

    ``ist`` maps IST index → vectors whose present gate uses it; ``privilege_change`` says
    whether an interrupt can now arrive from an outer ring (the CPU runs, or ran, at
    CPL > 0; ``privilege_reason`` names the evidence); ``task_gates`` lists vectors with
    present task gates (legacy mode only). ``later`` warns of what will need the TSS in
    the future (outer-ring code segments in the GDT), without making it matter now.
    """

    ist: Mapping[int, tuple[int, ...]]
    privilege_change: bool
    privilege_reason: str
    task_gates: tuple[int, ...] = ()
    later: str | None = None

    @property
    def any(self) -> bool:
        """Whether anything at all makes the CPU read the TSS."""
        return bool(self.ist) or self.privilege_change or bool(self.task_gates)

    def reason(self) -> str:
        """Why the TSS is (or is not) needed now, in one phrase."""
        parts = [
            f"IST{n} is used by {'vectors' if len(v) > 1 else 'vector'} {vector_ranges(v)}"
            for n, v in sorted(self.ist.items())
        ]
        if self.privilege_change:
            parts.append(self.privilege_reason)
        if self.task_gates:
            parts.append("task gates at " + vector_ranges(self.task_gates))
        if not parts:
            return "no gate uses an IST, no task gate, CPL 0 only: nothing reads the TSS"
        return "; ".join(parts)

    def verdict(self, matters: bool, why: str | None = None) -> str:
        """`` — it matters: ...`` or `` — harmless now: ...``."""
        text = why or self.reason()
        return f" — it matters: {text}" if matters else f" — harmless: {text}"


@dataclass(frozen=True)
class TssDiff:
    """The differences from a reference, the needs they were judged against, and notes."""

    reference: str
    reference_arch: str
    actual_arch: str
    differences: tuple[Difference, ...]
    needs: TssNeeds
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def mattering(self) -> tuple[Difference, ...]:
        """Differences the CPU needs now."""
        return tuple(d for d in self.differences if d.matters)

    @property
    def harmless(self) -> tuple[Difference, ...]:
        """Differences that do not matter now."""
        return tuple(d for d in self.differences if not d.matters)

    def to_json(self) -> dict[str, Any]:
        """``{reference, differences: [...]}`` plus arch, needs and notes."""
        return {
            "reference": self.reference,
            "reference_arch": self.reference_arch,
            "arch": self.actual_arch,
            "tss_needed": self.needs.any,
            "tss_needed_because": self.needs.reason(),
            "differences": [d.to_json() for d in self.differences],
            "notes": list(self.notes),
        }


def snapshot_tables(snapshot: Snapshot) -> SystemTables:
    """The decoded system tables of a snapshot (parts not captured are left out)."""
    return tables_from_reader(snapshot.cpu, snapshot.read)


def tss_needs(tables: SystemTables, cpu: CpuState, events: Sequence[ChainEvent] = ()) -> TssNeeds:
    """What makes the CPU read the TSS now (see :class:`TssNeeds`)."""
    ist: dict[int, list[int]] = {}
    task: list[int] = []
    if tables.idt is not None:
        for gate in tables.idt.present:
            values = gate.decoded.values
            if values.get("ist"):
                ist.setdefault(values["ist"], []).append(gate.vector)
            if tables.mode == "legacy" and values["type"] == TYPE_TASK_GATE:
                task.append(gate.vector)
    ring = [e for e in events if isinstance(e, InterruptEvent) and e.cpl > 0]
    user_code = _user_code_selectors(tables)
    later = None
    if user_code:
        later = (
            "the GDT has outer-ring code segments ("
            + ", ".join(f"{s:#04x}" for s in user_code)
            + "): once the kernel enters ring 3, interrupts will need RSP0"
            + ("" if tables.mode == "ia32e" else "/SS0")
            + " from a loaded TSS"
        )
    if cpu.cpl > 0:
        change, why = True, f"the CPU runs at CPL {cpu.cpl}: interrupts switch to RSP0"
    elif ring:
        change = True
        why = f"the interrupt log shows an interrupt taken at CPL {ring[0].cpl}"
    else:
        change, why = False, "the CPU has only run at CPL 0"
    return TssNeeds({n: tuple(v) for n, v in sorted(ist.items())}, change, why, tuple(task), later)


def _user_code_selectors(tables: SystemTables) -> list[int]:
    if tables.gdt is None:
        return []
    return [
        e.offset | e.decoded.values["dpl"]
        for e in tables.gdt.entries
        if e.kind == "code"
        and e.decoded is not None
        and e.decoded.values["present"]
        and e.decoded.values["dpl"] > 0
    ]


def _tss_entry(tables: SystemTables) -> GdtEntry | None:
    """The TSS descriptor: the one TR names, else the first TSS descriptor in the GDT."""
    if tables.tr_entry is not None and tables.tr_loaded:
        return tables.tr_entry
    if tables.gdt is None:
        return None
    for entry in tables.gdt.entries:
        if (
            entry.kind == "system"
            and entry.decoded is not None
            and is_tss_type(entry.decoded.values["type"], tables.mode)
        ):
            return entry
    return None


def _type_name(type_: int | None, mode: str) -> str:
    if type_ is None:
        return "none"
    width = "64" if mode == "ia32e" else "32"
    if type_ == TYPE_TSS_AVAILABLE:
        return f"TSS{width} available"
    if type_ == TYPE_TSS_BUSY:
        return f"TSS{width} busy"
    return f"type {type_:#x}"


def _normal_tr_type(type_: int, loaded: bool) -> int:
    """TCG shows a loaded TR as available (0x9), KVM as busy (0xB): compare as busy."""
    return TYPE_TSS_BUSY if loaded and type_ in (TYPE_TSS_AVAILABLE, TYPE_TSS_BUSY) else type_


def _tss_body(snapshot: Snapshot, tables: SystemTables) -> Decoded | None:
    """The TSS the CPU would use: TR's, or (TR never loaded) the bytes at TR base 0."""
    if tables.tss is not None:
        return tables.tss
    base = snapshot.cpu.tr.base
    if tables.tr_loaded:
        return None
    try:
        data = snapshot.read(base, 0x68)
    except LhvdbgError:
        return None
    return decode_tss(data, tables.mode)


def _required_limit(needs: TssNeeds, ia32e: bool) -> tuple[int, str]:
    """The smallest TSS limit that covers what the CPU needs now."""
    need, why = 0, "nothing"
    if needs.privilege_change:
        need = rsp_min_limit(0) if ia32e else ESP0_SS0_MIN_LIMIT
        why = "RSP0" if ia32e else "ESP0/SS0"
    for n in needs.ist:
        if ist_min_limit(n) > need:
            need, why = ist_min_limit(n), f"IST{n}"
    if not ia32e and needs.any:
        need, why = max(need, TSS_FULL_LIMIT), "a 32-bit TSS (LTR needs ≥ 0x67)"
    return need, why


def diff_tss(
    actual: Snapshot,
    reference: Snapshot,
    *,
    reference_name: str = "reference",
    events: Sequence[ChainEvent] = (),
    tables: SystemTables | None = None,
) -> TssDiff:
    """Compare ``actual``'s TR, TSS descriptor and TSS body with ``reference``'s
    (``tables``: ``actual``'s decoded tables, when the caller has them already)."""
    act = tables if tables is not None else snapshot_tables(actual)
    ref = snapshot_tables(reference)
    needs = tss_needs(act, actual.cpu, events)
    ia32e = act.mode == "ia32e"
    loaded = act.tr_loaded
    diffs: list[Difference] = []
    notes: list[str] = []
    required, required_why = _required_limit(needs, ia32e)
    needed = needs.any
    if needs.later and not needs.privilege_change:
        notes.append(needs.later)
    if act.idt is not None and act.idt.real_mode_ivt:
        notes.append(f"{NO_IDT_YET}: no gate names an IST or a task yet")

    def add(path: str, r: Value, a: Value, explanation: str, matters: bool) -> None:
        diffs.append(Difference(path, r, a, explanation, matters))

    # --- TR --------------------------------------------------------------------------
    atr, rtr = actual.cpu.tr, reference.cpu.tr
    if not loaded and ref.tr_loaded:
        first = True
        for name, r, a in (
            ("selector", rtr.selector, atr.selector),
            ("base", rtr.base, atr.base),
            ("limit", rtr.limit, atr.limit),
        ):
            if r == a:
                continue
            text = (
                "ltr never ran: TR holds its reset state (selector 0, base 0, limit 0xffff)"
                if first
                else "part of TR's reset state (see tr.selector)"
            )
            add(f"tr.{name}", r, a, text + needs.verdict(needed), needed)
            first = False
        notes.append(
            "QEMU prints the reset TR as "
            + ("TSS64-busy" if ia32e else "TSS32-busy")
            + ": the type says busy, but no TSS was ever loaded"
        )
    elif loaded:
        if atr.selector != rtr.selector:
            add(
                "tr.selector",
                rtr.selector,
                atr.selector,
                "another GDT slot for the TSS descriptor; any slot with a valid one works",
                False,
            )
        if atr.base != rtr.base:
            add("tr.base", rtr.base, atr.base, "the TSS is elsewhere; any address works", False)
        if atr.limit != rtr.limit:
            short = atr.limit < required
            text = f"the CPU needs a limit ≥ {required:#x} now (for {required_why})"
            if short:
                text += f": {atr.limit:#x} is too small"
            add("tr.limit", rtr.limit, atr.limit, text, short)
        if _normal_tr_type(atr.type, True) != _normal_tr_type(rtr.type, ref.tr_loaded):
            add(
                "tr.type",
                rtr.type,
                atr.type,
                f"{_type_name(atr.type, act.mode)} where the reference has "
                f"{_type_name(rtr.type, ref.mode)}",
                not is_tss_type(atr.type, act.mode) and needed,
            )
        elif atr.type != rtr.type:
            notes.append(
                f"TR type {atr.type:#x} vs {rtr.type:#x}: QEMU TCG shows a loaded TR as "
                "available, KVM as busy (the GDT descriptor is busy in both); not a difference"
            )
    if act.mode != ref.mode:
        notes.append(
            f"the reference is {'64' if ref.mode == 'ia32e' else '32'}-bit, this target "
            f"{'64' if ia32e else '32'}-bit: type 0x9/0xb is a {'64' if ia32e else '32'}-bit "
            "TSS here; fields are paired where they correspond"
        )

    # --- the TSS descriptor in the GDT --------------------------------------------------
    aent, rent = _tss_entry(act), _tss_entry(ref)
    if rent is not None and rent.decoded is not None:
        rdesc = rent.decoded
        if aent is None or aent.decoded is None:
            add(
                f"gdt[{rent.offset:#04x}].type",
                rdesc.values["type"],
                None,
                "the GDT holds no TSS descriptor at all" + needs.verdict(needed),
                needed,
            )
        else:
            _descriptor_differences(aent, rent, act, ref, needs, required, required_why, add)
            if aent.offset != rent.offset:
                notes.append(
                    f"the TSS descriptor is at GDT offset {aent.offset:#04x} here and "
                    f"{rent.offset:#04x} in the reference; those two are compared"
                )
            if not loaded:
                notes.append(
                    f"a TSS descriptor exists at gdt[{aent.offset:#04x}] but TR does not name "
                    "it: ltr never ran"
                )

    # --- the TSS body ------------------------------------------------------------------
    abody = _tss_body(actual, act)
    rbody = ref.tss
    if rbody is None:
        notes.append("the reference's TSS body was not captured; body not compared")
    elif abody is None:
        notes.append("this target's TSS body was not captured; body not compared")
    else:
        if not loaded:
            notes.append(
                f"TR was never loaded: the CPU would read TSS fields from linear "
                f"{atr.base:#x} (the BIOS's real-mode interrupt vector table); only the "
                "fields it needs now are compared"
            )
        diffs += _body_differences(abody, rbody, act, ref, needs, notes, loaded)
    return TssDiff(
        reference_name,
        reference.arch,
        actual.arch,
        tuple(diffs),
        needs,
        tuple(dict.fromkeys(notes)),
    )


def _descriptor_differences(
    aent: GdtEntry,
    rent: GdtEntry,
    act: SystemTables,
    ref: SystemTables,
    needs: TssNeeds,
    required: int,
    required_why: str,
    add: Callable[[str, Value, Value, str, bool], None],
) -> None:
    assert aent.decoded is not None and rent.decoded is not None
    adesc, rdesc = aent.decoded, rent.decoded
    path = f"gdt[{aent.offset:#04x}]"
    needed = needs.any
    at, rt = adesc.values["type"], rdesc.values["type"]
    if at != rt:
        if not act.tr_loaded and at == TYPE_TSS_AVAILABLE and rt == TYPE_TSS_BUSY:
            text = "available, not busy: ltr (which marks it busy) never ran on it"
            add(f"{path}.type", rt, at, text + needs.verdict(needed), needed)
        else:
            add(
                f"{path}.type",
                rt,
                at,
                f"{_type_name(at, act.mode)} where the reference has {_type_name(rt, ref.mode)}",
                not is_tss_type(at, act.mode) and needed,
            )
    if adesc.values["base"] != rdesc.values["base"]:
        add(
            f"{path}.base",
            rdesc.values["base"],
            adesc.values["base"],
            "the TSS is elsewhere; any address works",
            False,
        )
    alim, rlim = limit_bytes(adesc), limit_bytes(rdesc)
    if alim != rlim:
        short = alim < required
        add(
            f"{path}.limit",
            rlim,
            alim,
            f"the CPU needs a limit ≥ {required:#x} now (for {required_why})"
            + (f": {alim:#x} is too small" if short else ""),
            short,
        )
    if adesc.values["present"] != rdesc.values["present"]:
        add(
            f"{path}.present",
            bool(rdesc.values["present"]),
            bool(adesc.values["present"]),
            "ltr and task switches need a present TSS descriptor",
            needed and not adesc.values["present"],
        )
    if adesc.values["dpl"] != rdesc.values["dpl"]:
        add(
            f"{path}.dpl",
            rdesc.values["dpl"],
            adesc.values["dpl"],
            "a TSS descriptor's DPL only limits task switches through it",
            False,
        )


def _stack_pointer_problem(value: int, ia32e: bool) -> str | None:
    if value == 0:
        return "is 0"
    if ia32e and not is_canonical(value):
        return "is not canonical"
    return None


def _body_differences(
    abody: Decoded,
    rbody: Decoded,
    act: SystemTables,
    ref: SystemTables,
    needs: TssNeeds,
    notes: list[str],
    loaded: bool,
) -> list[Difference]:
    """Body fields, paired across 32/64-bit. With TR never loaded, only what is needed."""
    out: list[Difference] = []
    a64, r64 = act.mode == "ia32e", ref.mode == "ia32e"
    if a64 != r64:
        if a64:
            notes.append(
                "SS0..SS2 of the 32-bit reference have no counterpart in a 64-bit TSS (a "
                "privilege change in 64-bit mode loads a null SS)"
            )
            notes.append("IST1..IST7 have no counterpart in the 32-bit reference")
        else:
            notes.append("IST1..IST7 of the 64-bit reference have no counterpart in a 32-bit TSS")
    for ring in range(3):
        afield = f"rsp{ring}" if a64 else f"esp{ring}"
        rfield = f"rsp{ring}" if r64 else f"esp{ring}"
        a, r = abody.values.get(afield), rbody.values.get(rfield)
        used = ring == 0 and needs.privilege_change
        if a is None or r is None or a == r or (not loaded and not used):
            continue
        problem = _stack_pointer_problem(a, a64)
        path = f"tss.{afield}"
        if problem is None:
            text = f"another stack for CPL {ring}; fine if mapped and writable"
            out.append(Difference(path, r, a, text, False))
        elif ring == 0:
            text = f"{afield.upper()} {problem}" + needs.verdict(used, _ring0_why(needs))
            out.append(Difference(path, r, a, text, used))
        else:
            text = f"{afield.upper()} {problem}; used only on a change to CPL {ring}"
            out.append(Difference(path, r, a, text, False))
    if not a64 and not r64 and loaded:
        for ring in range(3):
            a, r = abody.values.get(f"ss{ring}"), rbody.values.get(f"ss{ring}")
            if a is None or r is None or a == r:
                continue
            valid = _valid_stack_selector(act, a, ring)
            text = f"SS{ring} {a:#06x} " + (
                "names a writable data segment here" if valid else "names no usable stack segment"
            )
            matters = ring == 0 and needs.privilege_change and not valid
            if ring == 0 and not valid:
                text += needs.verdict(matters, _ring0_why(needs))
            out.append(Difference(f"tss.ss{ring}", r, a, text, matters))
    if a64:
        for n in range(1, 8):
            a = abody.values.get(f"ist{n}")
            r = rbody.values.get(f"ist{n}") if r64 else None
            users = needs.ist.get(n, ())
            if a is None or (r64 and a == r) or (not users and (not loaded or not r64)):
                continue
            problem = _stack_pointer_problem(a, True)
            if users:
                vectors = vector_ranges(users)
                if problem is not None:
                    text = f"IST{n} {problem} and vectors {vectors} use it: their delivery faults"
                    out.append(Difference(f"tss.ist{n}", r, a, text, True))
                else:
                    text = f"IST{n} (used by {vectors}) points elsewhere; fine if mapped"
                    out.append(Difference(f"tss.ist{n}", r, a, text, False))
            else:
                text = f"no present gate uses IST{n}"
                out.append(Difference(f"tss.ist{n}", r, a, text, False))
    a, r = abody.values.get("io_map_base"), rbody.values.get("io_map_base")
    if loaded and a is not None and r is not None and a != r:
        text = "the I/O permission bitmap is consulted only for I/O at CPL > IOPL"
        out.append(Difference("tss.io_map_base", r, a, text, False))
    return out


def _ring0_why(needs: TssNeeds) -> str:
    if needs.privilege_change:
        return needs.privilege_reason
    return needs.later or "the CPU has only run at CPL 0"


def _valid_stack_selector(tables: SystemTables, selector: int, ring: int) -> bool:
    """Whether a selector names a present, writable data segment with DPL ``ring``."""
    if tables.gdt is None or selector & 0xFFFC == 0:
        return False
    if not tables.gdt.within_limit(selector):
        return False
    entry = tables.gdt.entry(selector)
    if entry is None or entry.decoded is None:
        return False
    desc = entry.decoded
    return (
        is_data(desc)
        and not is_code(desc)
        and bool(desc.values["type"] & 0x2)
        and bool(desc.values["present"])
        and desc.values["dpl"] == ring
        and (selector & 3) == ring
        and selector_index(selector) > 0
    )
