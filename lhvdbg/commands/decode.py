"""``lhvdbg decode KIND VALUE...``: decode raw bytes as an x86 structure, offline.

Kinds: descriptor, gate, selector, error-code, tss32, tss64, eflags, cr0, cr3, cr4, efer,
pte. Reads nothing from a machine; the layouts live in :mod:`lhvdbg.x86`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from lhvdbg.commands.registry import Context, command
from lhvdbg.errors import DecodeError
from lhvdbg.x86 import describe
from lhvdbg.x86.errorcodes import error_code_layout
from lhvdbg.x86.layout import Decoded, Layout, normalize_mode
from lhvdbg.x86.paging import decode_entry
from lhvdbg.x86.rawinput import blob_or_file, parse_hex, structure_bytes
from lhvdbg.x86.registers import (
    cr0_layout,
    cr3_layout,
    cr4_layout,
    efer_layout,
    eflags_layout,
)
from lhvdbg.x86.segments import (
    gate_layout,
    is_16_byte_system_type,
    limit_bytes,
    segment_descriptor_layout,
    selector_layout,
    system_descriptor_layout,
)
from lhvdbg.x86.tss import decode_tss
from lhvdbg.x86.vectors import ErrorCodeFormat, exception_info

KINDS = (
    "descriptor",
    "gate",
    "selector",
    "error-code",
    "tss32",
    "tss64",
    "eflags",
    "cr0",
    "cr3",
    "cr4",
    "efer",
    "pte",
)

_REGISTERS = {"eflags": eflags_layout, "cr0": cr0_layout, "cr4": cr4_layout, "efer": efer_layout}


@dataclass
class Result:
    """What a decode produced: the value, a summary line, notes, extra JSON keys."""

    decoded: Decoded
    summary: str = ""
    notes: list[str] = field(default_factory=list)
    extra: dict[str, object] = field(default_factory=dict)


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=KINDS, help="what the value is")
    parser.add_argument(
        "values",
        nargs="+",
        metavar="VALUE",
        help="hex: one 64-bit value, 32-bit words (low first), bytes, or @FILE",
    )
    parser.add_argument(
        "--mode",
        choices=("long", "protected"),
        help="CPU mode for descriptor/gate type names and sizes (default: from the size)",
    )
    parser.add_argument("--vector", type=lambda s: int(s, 0), help="error-code: the vector")
    parser.add_argument(
        "--paging",
        choices=("4level", "pae", "32bit"),
        default="4level",
        help="pte/cr3: paging mode (default 4level)",
    )
    parser.add_argument("--level", type=int, default=1, help="pte: 4=PML4E .. 1=PTE")


def _one(values: list[str], what: str) -> int:
    if len(values) != 1:
        raise DecodeError(f"{what} takes one value, got {len(values)}")
    return parse_hex(values[0])


def _single(values: list[str], layout: Layout) -> Decoded:
    return layout.decode(_one(values, layout.name))


def _descriptor(args: argparse.Namespace) -> Result:
    data = structure_bytes(args.values, (8, 16), "descriptor")
    mode = args.mode or ("long" if len(data) == 16 else "protected")
    if len(data) == 16:
        if normalize_mode(mode) != "ia32e":
            raise DecodeError("16-byte descriptors exist only in long mode")
        desc = system_descriptor_layout(mode).decode(data)
        if desc.values["s"]:
            raise DecodeError("a 16-byte descriptor must be a system descriptor (S=0)")
    else:
        desc = segment_descriptor_layout(mode).decode(data)
    result = Result(desc, describe.describe_descriptor(desc), extra={"mode": mode})
    result.extra["limit_bytes"] = limit_bytes(desc)
    if (
        len(data) == 8
        and normalize_mode(mode) == "ia32e"
        and desc.values["s"] == 0
        and is_16_byte_system_type(desc.values["type"])
    ):
        result.notes.append(
            "in long mode this is a 16-byte descriptor: the upper 8 bytes hold base 63:32"
        )
    return result


def _gate(args: argparse.Namespace) -> Result:
    long_mode = args.mode == "long"
    what = "long-mode gate" if long_mode else "gate"
    data = structure_bytes(args.values, (16,) if long_mode else (8, 16), what)
    mode = args.mode or ("long" if len(data) == 16 else "protected")
    if normalize_mode(mode) == "legacy" and len(data) != 8:
        raise DecodeError("a protected-mode gate is 8 bytes")
    gate = gate_layout(mode).decode(data)
    extra: dict[str, object] = {"mode": mode}
    if "ist" not in gate.values:
        extra["ist"] = 0  # legacy gates have no IST field: no stack switch by IST
    return Result(gate, describe.describe_gate(gate), extra=extra)


def _error_code(args: argparse.Namespace) -> Result:
    layout = error_code_layout(args.vector)
    code = _single(args.values, layout)
    info = exception_info(args.vector) if args.vector is not None else None
    fmt = info.error_code if info is not None else ErrorCodeFormat.SELECTOR
    summary = ""
    if fmt is ErrorCodeFormat.SELECTOR:
        summary = describe.describe_selector_error(code)
    elif fmt is ErrorCodeFormat.PAGE_FAULT:
        summary = describe.describe_page_fault(code)
    result = Result(code, summary)
    if fmt is ErrorCodeFormat.ZERO and code.raw:
        result.notes.append(f"this vector always pushes 0, not {code.raw:#x}")
    if args.vector is not None:
        result.extra["vector"] = args.vector
    return result


def _tss(args: argparse.Namespace, kind: str) -> Result:
    data = blob_or_file(args.values)
    if not data:
        raise DecodeError(f"{kind}: no bytes given")
    tss = decode_tss(data, "long" if kind == "tss64" else "protected")
    layout = tss.layout
    result = Result(tss)
    if len(data) > layout.size_bytes:
        result.notes.append(f"{len(data) - layout.size_bytes} bytes after the TSS ignored")
    if tss.missing:
        result.notes.append(
            f"only {len(data)} of {layout.size_bytes} bytes given: fields from "
            f"{tss.missing[0]} on are not covered"
        )
        result.extra["missing"] = list(tss.missing)
    return result


def _pte(args: argparse.Namespace) -> Result:
    entry = decode_entry(args.paging, args.level, _one(args.values, "a page-table entry"))
    return Result(entry, extra={"paging": args.paging, "level": args.level})


def decode_args(args: argparse.Namespace) -> Result:
    """Decode ``args.values`` as ``args.kind`` (DecodeError on bad input)."""
    kind = args.kind
    if args.vector is not None and kind != "error-code":
        raise DecodeError("--vector applies only to error-code")
    if kind == "descriptor":
        return _descriptor(args)
    if kind == "gate":
        return _gate(args)
    if kind == "selector":
        sel = _single(args.values, selector_layout())
        return Result(sel, describe.describe_selector(sel))
    if kind == "error-code":
        return _error_code(args)
    if kind in ("tss32", "tss64"):
        return _tss(args, kind)
    if kind == "pte":
        return _pte(args)
    if kind == "cr3":
        return Result(_single(args.values, cr3_layout(args.paging)), extra={"paging": args.paging})
    decoded = _single(args.values, _REGISTERS[kind]())
    return Result(decoded, describe.describe_flags(decoded))


@command(
    "decode",
    "decode raw bytes as an x86 structure (descriptor, gate, TSS, error code, CRn, PTE)",
    configure=_configure,
    category="offline",
)
def run(args: argparse.Namespace, ctx: Context) -> int:
    """Decode and print a table, or JSON with ``--json``."""
    result = decode_args(args)
    decoded = result.decoded
    if args.json:
        data: dict[str, object] = {"kind": args.kind, "layout": decoded.layout.name}
        data["raw"] = decoded.raw
        data.update(decoded.to_dict())
        data.update(result.extra)
        if result.summary:
            data["summary"] = result.summary
        if result.notes:
            data["notes"] = result.notes
        ctx.print_json(data)
        return 0
    from lhvdbg.ui.tables import plain, render_decoded, render_tss

    if args.kind in ("tss32", "tss64"):
        ctx.print(render_tss(decoded))
    else:
        ctx.print(render_decoded(decoded))
    if result.summary:
        ctx.print(plain(result.summary))
    for note in result.notes:
        ctx.print(plain(f"note: {note}"))
    return 0
