"""Segment selectors, segment and system descriptors, and IDT gates.

Intel SDM Vol. 3A §3.4.2 (selectors), §3.4.5 (segment descriptors, Figure 3-8), §3.4.5.1
(code/data types, Table 3-1), §3.5 (system descriptor types, Table 3-2), §7.2.3 (TSS
descriptor, 16-byte form Figure 7-4 in IA-32e mode), §5.8.3 / Figure 5-8 (call gates),
§6.11 (IDT gates, Figure 6-2) and §6.14.1 (64-bit IDT gates, Figure 6-8).
"""

from __future__ import annotations

from functools import cache

from lhvdbg.x86.layout import (
    Decoded,
    Field,
    Layout,
    TableMode,
    bit,
    bits,
    catalogued,
    normalize_mode,
)

# --- enums ----------------------------------------------------------------------------

_RESERVED = "reserved"

#: System-segment and gate types in legacy (protected/compatibility table) mode, Table 3-2.
LEGACY_SYSTEM_TYPES: dict[int, str] = {
    0x0: _RESERVED,
    0x1: "16-bit TSS (available)",
    0x2: "LDT",
    0x3: "16-bit TSS (busy)",
    0x4: "16-bit call gate",
    0x5: "task gate",
    0x6: "16-bit interrupt gate",
    0x7: "16-bit trap gate",
    0x8: _RESERVED,
    0x9: "32-bit TSS (available)",
    0xA: _RESERVED,
    0xB: "32-bit TSS (busy)",
    0xC: "32-bit call gate",
    0xD: _RESERVED,
    0xE: "32-bit interrupt gate",
    0xF: "32-bit trap gate",
}

#: System-segment and gate types in IA-32e mode, Table 3-2 (the 16-bit forms are gone).
IA32E_SYSTEM_TYPES: dict[int, str] = {
    **{t: _RESERVED for t in range(16)},
    0x2: "LDT",
    0x9: "64-bit TSS (available)",
    0xB: "64-bit TSS (busy)",
    0xC: "64-bit call gate",
    0xE: "64-bit interrupt gate",
    0xF: "64-bit trap gate",
}


def _code_data_name(t: int) -> str:
    if t & 0x8:
        parts = ["code", "execute/read" if t & 0x2 else "execute-only"]
        if t & 0x4:
            parts.append("conforming")
    else:
        parts = ["data", "read/write" if t & 0x2 else "read-only"]
        if t & 0x4:
            parts.append("expand-down")
    if t & 0x1:
        parts.append("accessed")
    return parts[0] + ", " + ", ".join(parts[1:])


#: Code- and data-segment types (S=1), Table 3-1.
CODE_DATA_TYPES: dict[int, str] = {t: _code_data_name(t) for t in range(16)}

TYPE_LDT = 0x2
TYPE_TSS16_AVAILABLE = 0x1
TYPE_TSS16_BUSY = 0x3
TYPE_TASK_GATE = 0x5
TYPE_INTERRUPT_GATE16 = 0x6
TYPE_TRAP_GATE16 = 0x7
TYPE_TSS_AVAILABLE = 0x9
TYPE_TSS_BUSY = 0xB
TYPE_CALL_GATE = 0xC
TYPE_INTERRUPT_GATE = 0xE
TYPE_TRAP_GATE = 0xF


def system_types(mode: str) -> dict[int, str]:
    """The system-type names for ``mode`` (legacy and IA-32e differ)."""
    return IA32E_SYSTEM_TYPES if normalize_mode(mode) == "ia32e" else LEGACY_SYSTEM_TYPES


_S = {0: "system", 1: "code/data"}
_G = {0: "byte granular", 1: "4 KiB granular"}
_TI = {0: "GDT", 1: "LDT"}

# --- layouts --------------------------------------------------------------------------


@catalogued()
@cache
def selector_layout() -> Layout:
    """Segment selector, 16 bits (SDM Vol. 3A §3.4.2, Figure 3-6)."""
    return Layout(
        "selector",
        16,
        (
            bits("rpl", 0, 1, "requested privilege level"),
            Field("ti", ((2, 2),), "table indicator", enum=_TI),
            bits("index", 3, 15, "descriptor index in the GDT/LDT"),
        ),
        "Segment selector (Intel SDM Vol. 3A §3.4.2, Figure 3-6).",
    )


def _descriptor_common(type_field: Field) -> tuple[Field, ...]:
    return (
        Field("limit", ((0, 15), (48, 51)), "segment limit (4 KiB units if G=1)"),
        Field("base", ((16, 39), (56, 63)), "segment base address"),
        type_field,
        Field("s", ((44, 44),), "0 = system, 1 = code/data", enum=_S),
        bits("dpl", 45, 46, "descriptor privilege level"),
        bit("present", 47, "segment present"),
        bit("avl", 52, "available to software"),
        bit("l", 53, "64-bit code segment"),
        bit("db", 54, "default size / big (1 = 32-bit)"),
        Field("g", ((55, 55),), "granularity of the limit", enum=_G),
    )


@catalogued(("legacy",), ("ia32e",))
@cache
def _segment_descriptor_layout(mode: TableMode) -> Layout:
    type_field = Field(
        "type",
        ((40, 43),),
        "segment or system type (names depend on S)",
        enum_on="s",
        enums={0: system_types(mode), 1: CODE_DATA_TYPES},
    )
    fields = _descriptor_common(type_field)
    label = "IA-32e" if mode == "ia32e" else "legacy"
    return Layout(
        "descriptor",
        64,
        fields,
        f"Segment descriptor, 8 bytes, {label} type names "
        "(Intel SDM Vol. 3A §3.4.5, Figure 3-8; types Tables 3-1 and 3-2).",
        mode,
    )


def segment_descriptor_layout(mode: str) -> Layout:
    """Any 8-byte descriptor (code/data, or system in legacy form); S picks type names.

    Intel SDM Vol. 3A §3.4.5 (Figure 3-8), Tables 3-1 and 3-2. In IA-32e mode code/data
    descriptors stay 8 bytes; system descriptors there are 16 bytes
    (:func:`system_descriptor_layout`).
    """
    return _segment_descriptor_layout(normalize_mode(mode))


@catalogued(("legacy",), ("ia32e",))
@cache
def _system_descriptor_layout(mode: TableMode) -> Layout:
    type_field = Field("type", ((40, 43),), "system type", enum=system_types(mode))
    common = _descriptor_common(type_field)
    if mode == "legacy":
        return Layout(
            "system descriptor",
            64,
            common,
            "System descriptor (LDT, TSS), 8 bytes, legacy mode "
            "(Intel SDM Vol. 3A §3.5, §7.2.2, Figure 7-3).",
            mode,
        )
    limit, _base, *rest = common
    fields = (
        limit,
        Field("base", ((16, 39), (56, 63), (64, 95)), "segment base address (64 bits)"),
        *rest,
        bits("reserved_hi", 96, 103, "reserved", reserved=True),
        bits("zero_type", 104, 108, "must be zero (type of the upper half)", reserved=True),
        bits("reserved_top", 109, 127, "reserved", reserved=True),
    )
    return Layout(
        "system descriptor",
        128,
        fields,
        "System descriptor (LDT, TSS), 16 bytes, IA-32e mode "
        "(Intel SDM Vol. 3A §7.2.3, Figure 7-4; types Table 3-2).",
        mode,
    )


def system_descriptor_layout(mode: str) -> Layout:
    """LDT/TSS descriptor: 8 bytes in legacy mode, 16 bytes in IA-32e mode.

    Intel SDM Vol. 3A §3.5 (Table 3-2), §7.2.2 (Figure 7-3), §7.2.3 (Figure 7-4).
    """
    return _system_descriptor_layout(normalize_mode(mode))


@catalogued(("legacy",), ("ia32e",))
@cache
def _gate_layout(mode: TableMode) -> Layout:
    common_mid = (bits("selector", 16, 31, "handler code segment (TSS for a task gate)"),)
    tail = (
        Field("type", ((40, 43),), "gate type", enum=system_types(mode)),
        bit("s", 44, "must be 0 (system)"),
        bits("dpl", 45, 46, "highest CPL allowed to use INT n"),
        bit("present", 47, "gate present"),
    )
    if mode == "legacy":
        return Layout(
            "gate",
            64,
            (
                Field("offset", ((0, 15), (48, 63)), "handler entry-point offset"),
                *common_mid,
                bits("param_count", 32, 36, "call gates: parameter count; else reserved"),
                bits("reserved", 37, 39, "reserved (zero)", reserved=True),
                *tail,
            ),
            "Gate descriptor (interrupt, trap, task, call), 8 bytes, legacy mode "
            "(Intel SDM Vol. 3A §6.11, Figure 6-2; §5.8.3, Figure 5-8).",
            mode,
        )
    return Layout(
        "gate",
        128,
        (
            Field("offset", ((0, 15), (48, 95)), "handler entry-point offset (64 bits)"),
            *common_mid,
            bits("ist", 32, 34, "interrupt stack table index (0 = no switch)"),
            bits("reserved", 35, 39, "reserved (zero)", reserved=True),
            *tail,
            bits("reserved_hi", 96, 127, "reserved", reserved=True),
        ),
        "Gate descriptor (interrupt, trap, call), 16 bytes, IA-32e mode "
        "(Intel SDM Vol. 3A §6.14.1, Figure 6-8; §5.8.3.1, Figure 5-9).",
        mode,
    )


def gate_layout(mode: str) -> Layout:
    """IDT (or call) gate: 8 bytes in legacy mode, 16 bytes with IST in IA-32e mode.

    Intel SDM Vol. 3A §6.11 (Figure 6-2) and §6.14.1 (Figure 6-8).
    """
    return _gate_layout(normalize_mode(mode))


def gate_size(mode: str) -> int:
    """Bytes per IDT entry: 8 (legacy) or 16 (IA-32e)."""
    return 16 if normalize_mode(mode) == "ia32e" else 8


# --- derived facts (no shifts outside this package) --------------------------------------


def limit_bytes(desc: Decoded) -> int:
    """The effective limit in bytes: with G=1 the 20-bit limit counts 4 KiB units."""
    limit = desc.values.get("limit", 0)
    return (limit << 12) | 0xFFF if desc.values.get("g", 0) else limit


def is_system(desc: Decoded) -> bool:
    """S=0."""
    return desc.values.get("s", 0) == 0


def is_code(desc: Decoded) -> bool:
    """A code segment (S=1, type bit 3 set)."""
    return not is_system(desc) and bool(desc.values.get("type", 0) & 0x8)


def is_data(desc: Decoded) -> bool:
    """A data segment (S=1, type bit 3 clear)."""
    return not is_system(desc) and not desc.values.get("type", 0) & 0x8


def is_tss_type(type_: int, mode: str) -> bool:
    """Whether a system type is a TSS valid in ``mode`` (16-bit TSSs only in legacy)."""
    if type_ in (TYPE_TSS_AVAILABLE, TYPE_TSS_BUSY):
        return True
    return normalize_mode(mode) == "legacy" and type_ in (TYPE_TSS16_AVAILABLE, TYPE_TSS16_BUSY)


def is_interrupt_or_trap_gate(type_: int, mode: str) -> bool:
    """Interrupt or trap gate valid in ``mode`` (16-bit forms only in legacy mode)."""
    if type_ in (TYPE_INTERRUPT_GATE, TYPE_TRAP_GATE):
        return True
    return normalize_mode(mode) == "legacy" and type_ in (
        TYPE_INTERRUPT_GATE16,
        TYPE_TRAP_GATE16,
    )


def is_valid_idt_gate_type(type_: int, mode: str) -> bool:
    """A type allowed in the IDT: interrupt/trap gates, plus task gates in legacy mode."""
    if is_interrupt_or_trap_gate(type_, mode):
        return True
    return normalize_mode(mode) == "legacy" and type_ == TYPE_TASK_GATE


def is_16_byte_system_type(type_: int) -> bool:
    """System types that take 16 bytes in an IA-32e GDT (LDT, TSS, call gate)."""
    return type_ in (TYPE_LDT, TYPE_TSS_AVAILABLE, TYPE_TSS_BUSY, TYPE_CALL_GATE)


def selector_index(selector: int) -> int:
    """The descriptor index of a selector."""
    return selector_layout().decode(selector & 0xFFFF).values["index"]


def selector_ti(selector: int) -> int:
    """The table indicator of a selector (1 = LDT)."""
    return selector_layout().decode(selector & 0xFFFF).values["ti"]
