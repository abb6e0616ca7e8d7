"""Consistency checks over the system tables of one CPU.

Each check yields :class:`Finding` s with a stable ``id``, a severity, the entry involved
(``tr``, ``gdt[0x20]``, ``idt[0x08]``, ``idt[0x20-0x2f]``) and a one-line message naming
the values. Pure: takes decoded tables and a :class:`CpuState`, never a target.

The rules follow the Intel SDM Vol. 3A: §6.12.1 (interrupt delivery through a gate: the
selector must name a present code segment, DPL ≤ CPL), §6.14.1 (IA-32e: the target must be
a 64-bit code segment), §6.14.5 and §7.7 (IST pointers in the 64-bit TSS at 0x24 + 8(n-1)),
§7.2.2/§7.2.4 (TSS descriptor type, LTR needs a limit ≥ 0x67), §6.10 (IDT limit) and §3.4.2
(selectors beyond the GDT limit), §3.3.7.1 (canonical addresses).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Literal

from lhvdbg.x86.cpustate import CpuState, PicState
from lhvdbg.x86.cpuview import is_canonical
from lhvdbg.x86.interrupt_sources import interrupt_sources
from lhvdbg.x86.layout import Decoded
from lhvdbg.x86.segments import (
    TYPE_TASK_GATE,
    is_tss_type,
    is_valid_idt_gate_type,
    limit_bytes,
    selector_ti,
)
from lhvdbg.x86.tables import NO_IDT_YET, GdtTable, IdtEntry, SystemTables
from lhvdbg.x86.tss import (
    ESP0_SS0_MIN_LIMIT,
    TSS_FULL_LIMIT,
    ist_min_limit,
    ist_offset,
    rsp_min_limit,
)
from lhvdbg.x86.usable import code_segment_problem
from lhvdbg.x86.vectors import EXCEPTIONS, vector_name

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")

#: Every finding id this module can produce.
FINDING_IDS = (
    "tr-never-loaded",
    "ist-without-tr",
    "tss-descriptor-wrong-type",
    "descriptor-beyond-gdt-limit",
    "tr-cache-differs",
    "tss-limit-too-small",
    "ist-pointer-invalid",
    "rsp0-invalid",
    "idt-limit-short",
    "gate-not-present",
    "gate-wrong-type",
    "gate-selector-not-code",
    "gate-dpl",
    "idt-not-loaded",
    "table-unavailable",
)

_CRITICAL_VECTORS = frozenset({8, 13, 14})  # #DF, #GP, #PF


@dataclass(frozen=True)
class Finding:
    """One problem found: stable id, severity, entry, one-line message."""

    id: str
    severity: Severity
    entry: str
    message: str

    def to_dict(self) -> dict[str, str]:
        """JSON form: id, severity, entry, message."""
        return asdict(self)


def pic_vectors(pic: PicState | None) -> dict[int, str]:
    """Vectors the PICs deliver for unmasked IRQ lines: vector → ``IRQn`` (from the one
    vector map, :mod:`lhvdbg.x86.interrupt_sources`; IRQ2, the cascade, is never
    delivered)."""
    return {
        s.vector: f"IRQ{s.irq}"
        for s in interrupt_sources(pic)
        if s.irq is not None and not s.masked
    }


def _idt_name(vector: int) -> str:
    return f"idt[{vector:#04x}]"


def _vector_label(vector: int, irqs: dict[int, str]) -> str:
    label = vector_name(vector)
    if vector in irqs:
        label += f", {irqs[vector]}"
    return label


def check_system(
    tables: SystemTables,
    cpu: CpuState,
    *,
    pic: PicState | None = None,
    vectors_in_use: Iterable[int] = (),
) -> list[Finding]:
    """All findings for ``tables``; errors first, then warnings, then info.

    Vectors considered in use: the architectural exceptions, those the PICs deliver for
    unmasked IRQ lines (``pic``), and ``vectors_in_use``.
    """
    findings: list[Finding] = []
    if not cpu.cr0 & 1:
        return findings  # real mode: no descriptor tables in use
    for what, why in tables.unavailable.items():
        if what == "tss" and not tables.tr_loaded:
            continue
        findings.append(Finding("table-unavailable", "info", what, why))
    irqs = pic_vectors(pic)
    in_use = set(EXCEPTIONS) | set(irqs) | set(vectors_in_use)
    findings += _check_tr(tables, cpu)
    findings += _check_tss(tables, cpu)
    findings += _check_segments(tables, cpu)
    findings += _check_idt(tables, cpu, in_use, irqs)
    order = {s: i for i, s in enumerate(SEVERITIES)}
    return sorted(findings, key=lambda f: order[f.severity])


def _present_gates(tables: SystemTables) -> list[IdtEntry]:
    return list(tables.idt.present) if tables.idt is not None else []


def _check_tr(tables: SystemTables, cpu: CpuState) -> list[Finding]:
    out: list[Finding] = []
    tr = tables.tr
    ia32e = tables.mode == "ia32e"
    if not tables.tr_loaded:
        out.append(
            Finding(
                "tr-never-loaded",
                "warning",
                "tr",
                f"TR was never loaded: selector {tr.selector:#06x}, base {tr.base:#x}, "
                f"limit {tr.limit:#x} (reset state); no stack for a privilege change or IST",
            )
        )
        if ia32e:
            users = [g for g in _present_gates(tables) if g.decoded.values.get("ist")]
            if users:
                first = users[0]
                out.append(
                    Finding(
                        "ist-without-tr",
                        "error",
                        _idt_name(first.vector),
                        f"{len(users)} gate(s) use an IST (first {vector_name(first.vector)}, "
                        f"IST{first.decoded.values['ist']}) but TR was never loaded: "
                        "delivery reads the TSS at base 0",
                    )
                )
        return out
    if selector_ti(tr.selector):
        out.append(
            Finding(
                "tss-descriptor-wrong-type",
                "error",
                "tr",
                f"TR selector {tr.selector:#06x} has TI=1 (LDT); a TSS descriptor must be in "
                "the GDT",
            )
        )
        return out
    gdt = tables.gdt
    if gdt is None:
        return out
    size = 16 if ia32e else 8
    if not gdt.within_limit(tr.selector, size):
        out.append(
            Finding(
                "descriptor-beyond-gdt-limit",
                "error",
                "tr",
                f"TR selector {tr.selector:#06x} names GDT bytes {tr.selector & ~7:#x}.."
                f"{(tr.selector & ~7) + size - 1:#x}, beyond the GDT limit {gdt.limit:#x}",
            )
        )
        return out
    entry = tables.tr_entry
    if entry is None or entry.decoded is None:
        return out
    desc = entry.decoded
    name = f"gdt[{entry.offset:#04x}]"
    type_ = desc.values["type"]
    if desc.values["s"] != 0 or not is_tss_type(type_, tables.mode):
        kind = desc.name_of("type")
        out.append(
            Finding(
                "tss-descriptor-wrong-type",
                "error",
                name,
                f"TR selector {tr.selector:#06x} names a descriptor of type {type_:#x} "
                f"({kind}, S={desc.values['s']}), not a TSS",
            )
        )
        return out
    if entry.note:
        out.append(Finding("descriptor-beyond-gdt-limit", "error", name, entry.note))
    base, limit = desc.values["base"], limit_bytes(desc)
    if ia32e and desc.layout.size_bits == 64:
        base = tr.base  # upper half unknown
    if base != tr.base or limit != tr.limit:
        out.append(
            Finding(
                "tr-cache-differs",
                "info",
                name,
                f"TR cache has base {tr.base:#x} limit {tr.limit:#x}, the GDT descriptor now "
                f"says base {base:#x} limit {limit:#x} (changed after LTR?)",
            )
        )
    return out


def _used_ists(tables: SystemTables) -> dict[int, list[int]]:
    used: dict[int, list[int]] = {}
    if tables.mode != "ia32e":
        return used
    for gate in _present_gates(tables):
        ist = gate.decoded.values.get("ist", 0)
        if ist:
            used.setdefault(ist, []).append(gate.vector)
    return used


def _has_user_code(gdt: GdtTable | None, cpu: CpuState) -> bool:
    if cpu.cpl == 3:
        return True
    if gdt is None:
        return False
    return any(
        e.decoded is not None and e.kind == "code" and e.decoded.values["dpl"] == 3
        for e in gdt.entries
    )


def _pointer_problems(value: int, ia32e: bool) -> list[tuple[Severity, str]]:
    problems: list[tuple[Severity, str]] = []
    if value == 0:
        problems.append(("error", "is 0"))
    elif ia32e and not is_canonical(value):
        problems.append(("error", f"{value:#x} is not canonical"))
    elif value & (0xF if ia32e else 0x3):
        align = 16 if ia32e else 4
        problems.append(("warning", f"{value:#x} is not {align}-byte aligned"))
    return problems


def _check_tss(tables: SystemTables, cpu: CpuState) -> list[Finding]:
    out: list[Finding] = []
    if not tables.tr_loaded:
        return out
    tr = tables.tr
    ia32e = tables.mode == "ia32e"
    used = _used_ists(tables)
    for n, vectors in sorted(used.items()):
        if tr.limit < ist_min_limit(n):
            out.append(
                Finding(
                    "tss-limit-too-small",
                    "error",
                    _idt_name(vectors[0]),
                    f"{vector_name(vectors[0])} uses IST{n} at TSS offset {ist_offset(n):#x}.."
                    f"{ist_min_limit(n):#x} but the TR limit is {tr.limit:#x}",
                )
            )
    user = _has_user_code(tables.gdt, cpu)
    stack0 = "rsp0" if ia32e else "esp0"
    need0 = rsp_min_limit(0) if ia32e else ESP0_SS0_MIN_LIMIT
    if tr.limit < need0:
        out.append(
            Finding(
                "tss-limit-too-small",
                "error" if user else "warning",
                "tr",
                f"TR limit {tr.limit:#x} does not cover {stack0.upper()} (needs ≥ {need0:#x})",
            )
        )
    elif tr.limit < TSS_FULL_LIMIT:
        out.append(
            Finding(
                "tss-limit-too-small",
                "warning" if not ia32e else "info",
                "tr",
                f"TR limit {tr.limit:#x} is smaller than a full TSS ({TSS_FULL_LIMIT:#x})",
            )
        )
    tss = tables.tss
    if tss is None:
        return out
    for n, vectors in sorted(used.items()):
        value = tss.values.get(f"ist{n}")
        if value is None:
            continue
        for severity, text in _pointer_problems(value, ia32e):
            out.append(
                Finding(
                    "ist-pointer-invalid",
                    severity,
                    f"tss.ist{n}",
                    f"IST{n} (used by {vector_name(vectors[0])}) {text}",
                )
            )
    out += _check_stack0(tss, ia32e, user)
    return out


def _check_stack0(tss: Decoded, ia32e: bool, user: bool) -> list[Finding]:
    out: list[Finding] = []
    name = "rsp0" if ia32e else "esp0"
    value = tss.values.get(name)
    if value is None:
        return out
    why = "needed for interrupts from CPL 3" if user else "used only on a change to CPL 0"
    for severity, text in _pointer_problems(value, ia32e):
        if not user and severity != "error":
            continue
        if not user:
            severity = "info"
        out.append(Finding("rsp0-invalid", severity, f"tss.{name}", f"{name} {text}; {why}"))
    if not ia32e:
        ss0 = tss.values.get("ss0")
        if ss0 is not None and ss0 & 0xFFFC == 0:
            out.append(
                Finding(
                    "rsp0-invalid",
                    "warning" if user else "info",
                    "tss.ss0",
                    f"SS0 is a null selector ({ss0:#06x}); {why}",
                )
            )
    return out


def _check_segments(tables: SystemTables, cpu: CpuState) -> list[Finding]:
    out: list[Finding] = []
    gdt = tables.gdt
    if gdt is None:
        return out
    for name in ("cs", "ss", "ds", "es", "fs", "gs"):
        seg = cpu.segments.get(name)
        if seg is None or seg.selector & 0xFFFC == 0 or selector_ti(seg.selector):
            continue
        if not gdt.within_limit(seg.selector):
            out.append(
                Finding(
                    "descriptor-beyond-gdt-limit",
                    "warning",
                    name,
                    f"{name.upper()} selector {seg.selector:#06x} is beyond the GDT limit "
                    f"{gdt.limit:#x}; reloading {name.upper()} (e.g. IRET) will fault",
                )
            )
    return out


#: The finding for each code-segment check of the delivery model (SDM Vol. 2A INT n).
_GATE_FINDING = {
    "cs-null": "gate-selector-not-code",
    "cs-limit": "descriptor-beyond-gdt-limit",
    "cs-type": "gate-selector-not-code",
    "cs-long": "gate-selector-not-code",
    "cs-present": "gate-selector-not-code",
    "cs-dpl": "gate-dpl",
}


def _gate_problem(
    gate: IdtEntry, tables: SystemTables, cpu: CpuState
) -> tuple[str, Severity, str] | None:
    mode = tables.mode
    values = gate.decoded.values
    type_ = values["type"]
    if values["s"] or not is_valid_idt_gate_type(type_, mode):
        return (
            "gate-wrong-type",
            "error",
            f"type {type_:#x} ({gate.decoded.name_of('type')}, S={values['s']}) "
            "is not an interrupt/trap gate",
        )
    if type_ == TYPE_TASK_GATE:
        return None  # task gates name a TSS; checked by the CPU at delivery
    # Whether the gate's code segment is usable is decided once, by the delivery model.
    problem = code_segment_problem(tables, values["selector"], cpl=cpu.cpl, ia32e=mode == "ia32e")
    if problem is None:
        return None
    check, reason = problem
    return (_GATE_FINDING[check], "error", reason)


def _check_idt(
    tables: SystemTables, cpu: CpuState, in_use: set[int], irqs: dict[int, str]
) -> list[Finding]:
    out: list[Finding] = []
    idt = tables.idt
    if idt is None:
        return out
    if idt.real_mode_ivt:  # its vectors are no gates: nothing to judge but the IDTR
        return [
            Finding(
                "idt-not-loaded",
                "warning",
                "idtr",
                f"{NO_IDT_YET}: base {idt.base:#x}, limit {idt.limit:#x}; an interrupt or "
                "exception now would read the IVT's 4-byte vectors as gates",
            )
        ]
    for vector in sorted(in_use):
        severity: Severity = "error" if vector in irqs or vector in _CRITICAL_VECTORS else "warning"
        if not idt.covers(vector):
            need = vector * idt.entry_size + idt.entry_size - 1
            out.append(
                Finding(
                    "idt-limit-short",
                    severity,
                    _idt_name(vector),
                    f"IDT limit {idt.limit:#x} does not cover vector {vector:#04x} "
                    f"({_vector_label(vector, irqs)}), which needs {need:#x}",
                )
            )
            continue
        gate = idt.gate(vector)
        if gate is not None and gate.kind == "not-present":
            out.append(
                Finding(
                    "gate-not-present",
                    severity,
                    _idt_name(vector),
                    f"gate for vector {vector:#04x} ({_vector_label(vector, irqs)}) is not present",
                )
            )
    # Per-gate problems, grouped over runs of vectors with the same problem.
    problems: list[tuple[int, tuple[str, Severity, str]]] = []
    for gate in idt.present:
        problem = _gate_problem(gate, tables, cpu)
        if problem is not None:
            problems.append((gate.vector, problem))
    i = 0
    while i < len(problems):
        first, problem = problems[i]
        j = i
        while (
            j + 1 < len(problems)
            and problems[j + 1][1] == problem
            and problems[j + 1][0] == problems[j][0] + 1
        ):
            j += 1
        last = problems[j][0]
        if first == last:
            entry, who = _idt_name(first), f"gate {first:#04x}"
        else:
            entry = f"idt[{first:#04x}-{last:#04x}]"
            who = f"{last - first + 1} gates {first:#04x}..{last:#04x}"
        ident, severity, text = problem
        out.append(Finding(ident, severity, entry, f"{who}: {text}"))
        i = j + 1
    return out
