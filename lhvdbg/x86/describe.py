"""One-line human summaries of decoded structures (text only; no colour, no rich).

Like pyelftools' ``describe_*`` helpers: decoding never formats, formatting never decodes.
"""

from __future__ import annotations

from lhvdbg.x86.layout import Decoded
from lhvdbg.x86.segments import TYPE_TASK_GATE, is_system, limit_bytes
from lhvdbg.x86.vectors import vector_name


def describe_descriptor(desc: Decoded) -> str:
    """``32-bit TSS (available), base 0x100950, limit 0x67, DPL 0, present``."""
    v = desc.values
    if desc.raw == 0:
        return "null descriptor"
    parts = [
        desc.name_of("type") or f"type {v['type']:#x}",
        f"base {v['base']:#x}",
        f"limit {limit_bytes(desc):#x}" + (" (4 KiB granular)" if v["g"] else ""),
        f"DPL {v['dpl']}",
        "present" if v["present"] else "NOT present",
    ]
    if not is_system(desc):
        if v["type"] & 0x8:
            parts.append("64-bit" if v["l"] else ("32-bit" if v["db"] else "16-bit"))
        else:
            parts.append("32-bit stack" if v["db"] else "16-bit stack")
    return ", ".join(parts)


def describe_gate(gate: Decoded) -> str:
    """``32-bit interrupt gate -> 0x0010:0x1009b8, DPL 0, present``."""
    v = gate.values
    kind = gate.name_of("type") or f"type {v['type']:#x}"
    if v["type"] == TYPE_TASK_GATE:
        target = f"TSS selector {v['selector']:#06x}"
    else:
        target = f"{v['selector']:#06x}:{v['offset']:#x}"
    parts = [f"{kind} -> {target}", f"DPL {v['dpl']}"]
    if v.get("ist"):
        parts.append(f"IST{v['ist']}")
    parts.append("present" if v["present"] else "NOT present")
    return ", ".join(parts)


def describe_selector(sel: Decoded) -> str:
    """``GDT index 2 (0x0010), RPL 0``."""
    v = sel.values
    table = "LDT" if v["ti"] else "GDT"
    null = " (null selector)" if not v["ti"] and v["index"] == 0 else ""
    return f"{table} index {v['index']} ({v['index'] * 8:#06x}), RPL {v['rpl']}{null}"


def describe_selector_error(code: Decoded) -> str:
    """``IDT vector 0x08 (#DF), external`` / ``GDT selector 0x0010 (index 2)``."""
    v = code.values
    if v["idt"]:
        what = f"IDT vector {v['index']:#04x} ({vector_name(v['index'] & 0xFF)})"
    else:
        table = "LDT" if v["ti"] else "GDT"
        what = f"{table} selector {v['index'] * 8:#06x} (index {v['index']})"
        if v["index"] == 0 and not v["ti"]:
            what = "null selector (or no selector involved)"
    if v["ext"]:
        what += ", external event"
    return what


def describe_page_fault(code: Decoded) -> str:
    """``supervisor write to a not-present page``."""
    v = code.values
    access = "instruction fetch" if v["id"] else ("write" if v["wr"] else "read")
    who = "user" if v["us"] else "supervisor"
    cause = "protection violation" if v["p"] else "not-present page"
    extra = [name.upper() for name in ("rsvd", "pk", "ss", "hlat", "sgx") if v.get(name)]
    tail = f" ({', '.join(extra)})" if extra else ""
    return f"{who} {access}: {cause}{tail}"


def describe_flags(decoded: Decoded) -> str:
    """The names of the set one-bit fields, e.g. ``pe et pg`` (multi-bit fields as k=v)."""
    parts: list[str] = []
    for f in decoded.layout.fields:
        value = decoded.values.get(f.name, 0)
        if f.reserved:
            continue
        if f.width == 1:
            if value:
                parts.append(f.name)
        elif value:
            parts.append(f"{f.name}={value:#x}")
    return " ".join(parts) if parts else "(none set)"
