"""State views for the shell and scenarios: ``regs``, ``sregs``, ``cregs``, ``gdt [SEL]``,
``idt [N|all]``, ``tss``, ``pic``, ``lapic``, ``pt VA``.

Each reads the current target (live or snapshot), decodes through :mod:`lhvdbg.x86`, and
renders with :mod:`lhvdbg.ui.state_views` / :mod:`lhvdbg.ui.tables`, or prints JSON with
``--json``. ``show`` (the CLI command for snapshot files) calls the same :func:`run_view`.
Changes since the previous stop are marked when ``ctx.state["previous"]`` holds the
snapshot or CPU state of that stop (the shell keeps it).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lhvdbg.commands.registry import Context, command
from lhvdbg.errors import UsageError
from lhvdbg.state.snapshot import Snapshot, cpu_to_dict, lapic_to_dict, pic_to_dict
from lhvdbg.x86.cpustate import CpuState

if TYPE_CHECKING:
    from lhvdbg.state.target import Target
    from lhvdbg.x86.layout import Decoded
    from lhvdbg.x86.tables import GdtTable, IdtTable, SystemTables

VIEWS = ("regs", "sregs", "cregs", "gdt", "idt", "tss", "pic", "lapic")
WHERE = {"shell", "scenario"}


@dataclass(frozen=True)
class Previous:
    """What the previous stop left: its CPU state, and the snapshot if one was kept."""

    cpu: CpuState | None = None
    snapshot: Snapshot | None = None


#: One view: (target, argument, previous stop, as JSON?) -> JSON data or a renderable.
ViewFunction = Callable[["Target", str | None, Previous, bool], Any]


def previous_of(ctx: Context) -> Previous:
    """``ctx.state["previous"]`` as a :class:`Previous` (a Snapshot or a CpuState)."""
    value = ctx.state.get("previous")
    if isinstance(value, Snapshot):
        return Previous(value.cpu, value)
    if isinstance(value, CpuState):
        return Previous(value, None)
    return Previous()


def _hex(value: int) -> str:
    return f"{value:#x}"


def _parse_int(text: str, what: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        try:
            return int(text, 16)
        except ValueError:
            raise UsageError(f"{what}: {text!r} is not a number") from None


#: What the GDT/IDT views say first in real mode, where the tables shown are not in use.
REAL_MODE_NOTE = (
    "real mode: the CPU does not use the GDT/IDT — IDTR is the real-mode IVT; "
    "shown as protected mode would read them"
)


def _real_mode_note(target: Target) -> str | None:
    """:data:`REAL_MODE_NOTE` when the CPU is in real mode, else None."""
    return REAL_MODE_NOTE if target.cpu().mode == "real" else None


def _tables(target: Target) -> SystemTables:
    from lhvdbg.state.system import system_tables

    return system_tables(target)


def _previous_tables(prev: Previous) -> SystemTables | None:
    """The system tables of the previous stop, when its snapshot was kept."""
    if prev.snapshot is None:
        return None
    from lhvdbg.state.system import tables_from_reader

    return tables_from_reader(prev.snapshot.cpu, prev.snapshot.read)


# --- one function per view: (target, arg, previous, as_json) -> JSON data or renderable ----


def _regs(target: Target, arg: str | None, prev: Previous, as_json: bool) -> Any:
    cpu = target.cpu()
    if as_json:
        from lhvdbg.x86.registers import eflags_layout

        data = {k: v for k, v in cpu_to_dict(cpu).items() if k in ("mode", "cpl", "halted")}
        data |= {"ip": _hex(cpu.ip), "flags": _hex(cpu.flags)}
        data["flags_decoded"] = eflags_layout().decode(cpu.flags).to_dict()
        data["gprs"] = {name: _hex(value) for name, value in cpu.gprs.items()}
        return data
    from lhvdbg.ui.state_views import render_regs

    return render_regs(cpu, prev.cpu, symbols=target.symbols())


def _sregs(target: Target, arg: str | None, prev: Previous, as_json: bool) -> Any:
    cpu = target.cpu()
    if as_json:
        from lhvdbg.state.diff import segment_flags
        from lhvdbg.x86.tables import tr_never_loaded

        data = {k: v for k, v in cpu_to_dict(cpu).items() if k in ("segments", "gdtr", "idtr")}
        for name, seg in cpu.segments.items():
            decoded = segment_flags(seg, cpu.mode).to_dict()
            data["segments"][name]["decoded"] = {
                k: v for k, v in decoded.items() if not k.startswith(("base", "limit"))
            }
        data["tr_never_loaded"] = tr_never_loaded(cpu.tr)
        return data
    from lhvdbg.ui.state_views import render_sregs

    return render_sregs(cpu, prev.cpu)


def _cregs(target: Target, arg: str | None, prev: Previous, as_json: bool) -> Any:
    cpu = target.cpu()
    if as_json:
        from lhvdbg.x86.registers import cr0_layout, cr4_layout, efer_layout

        layouts = {"cr0": cr0_layout(), "cr4": cr4_layout(), "efer": efer_layout()}
        data: dict[str, Any] = {}
        for name in ("cr0", "cr2", "cr3", "cr4", "efer"):
            value = getattr(cpu, name)
            data[name] = {"value": _hex(value)}
            if name in layouts:
                data[name]["decoded"] = layouts[name].decode(value).to_dict()
        return data
    from lhvdbg.ui.state_views import render_cregs

    return render_cregs(cpu, prev.cpu)


def _table_json(
    target: Target, table: GdtTable | IdtTable, entries: list[dict[str, Any]]
) -> dict[str, Any]:
    """A GDT/IDT as JSON: base, limit, mode, the real-mode note if any, the entries given."""
    data: dict[str, Any] = {
        "base": _hex(table.base),
        "limit": _hex(table.limit),
        "mode": table.mode,
    }
    note = _real_mode_note(target)
    if note is not None:
        data["note"] = note
    return data | {"entries": entries}


def _previous_entry(prev: Previous, name: str, index: int) -> Decoded | None:
    """Slot ``index`` of the previous stop's GDT or IDT (``name``), decoded, if kept."""
    old = _previous_tables(prev)
    table: GdtTable | IdtTable | None = getattr(old, name) if old is not None else None
    if table is None or index >= len(table.entries):
        return None
    return table.entries[index].decoded


def _gdt(target: Target, arg: str | None, prev: Previous, as_json: bool) -> Any:
    tables = _tables(target)
    if tables.gdt is None:
        raise UsageError(f"gdt: {tables.unavailable.get('gdt', 'GDT not readable')}")
    gdt = tables.gdt
    entries = list(gdt.entries)
    if arg is not None:
        selector = _parse_int(arg, "gdt")
        entry = gdt.entry(selector)
        if entry is None:
            raise UsageError(
                f"gdt: selector {selector:#x} is beyond the {len(gdt.entries)} slots read "
                f"(limit {gdt.limit:#x})"
            )
        entries = [entry]
    if as_json:
        return _table_json(
            target,
            gdt,
            [
                {
                    "index": e.index,
                    "selector": _hex(e.selector),
                    "kind": e.kind,
                    "raw": e.raw.hex(),
                    "fields": e.decoded.to_dict() if e.decoded is not None else None,
                    "note": e.note,
                }
                for e in entries
            ],
        )
    from lhvdbg.ui import tables as ui

    note = _real_mode_note(target)
    if arg is None:
        return ui.with_note(note, ui.render_gdt(gdt))
    entry = entries[0]
    if entry.decoded is None:
        return ui.with_note(note, ui.plain(f"gdt slot {entry.offset:#x}: {entry.note}"))
    from lhvdbg.x86.describe import describe_descriptor

    old = _previous_entry(prev, "gdt", entry.index)
    title = f"gdt[{entry.offset:#x}] ({entry.kind}): {describe_descriptor(entry.decoded)}"
    return ui.with_note(note, ui.render_decoded(entry.decoded, old, title=title))


def _idt(target: Target, arg: str | None, prev: Previous, as_json: bool) -> Any:
    from lhvdbg.x86.vectors import vector_name

    tables = _tables(target)
    if tables.idt is None:
        raise UsageError(f"idt: {tables.unavailable.get('idt', 'IDT not readable')}")
    idt = tables.idt
    vector: int | None = None
    if arg is not None and arg != "all":
        vector = _parse_int(arg, "idt")
        if not 0 <= vector <= 255:
            raise UsageError(f"idt: vector {vector} is not 0..255")
        if idt.gate(vector) is None:
            raise UsageError(
                f"idt: vector {vector:#x} is beyond the IDT read (limit {idt.limit:#x})"
            )
    entries = [e for e in idt.entries if e.kind == "gate" or arg == "all"]
    if vector is not None:
        entries = [e for e in idt.entries if e.vector == vector]
    if as_json:
        return _table_json(
            target,
            idt,
            [
                {
                    "vector": e.vector,
                    "name": vector_name(e.vector),
                    "kind": e.kind,
                    "raw": e.raw.hex(),
                    "fields": e.decoded.to_dict(),
                }
                for e in entries
            ],
        )
    from lhvdbg.ui import tables as ui

    note = _real_mode_note(target)
    if vector is None:
        # collapsed runs of equal or not-present gates; `idt all`: every slot
        rendered = ui.render_idt(
            idt, only_present=arg != "all", symbols=target.symbols(), collapse=arg != "all"
        )
        return ui.with_note(note, rendered)
    from lhvdbg.x86.describe import describe_gate

    gate = entries[0]
    old = _previous_entry(prev, "idt", vector)
    title = f"idt[{vector:#04x}] {vector_name(vector)} ({gate.kind}): {describe_gate(gate.decoded)}"
    return ui.with_note(note, ui.render_decoded(gate.decoded, old, title=title))


def _tss(target: Target, arg: str | None, prev: Previous, as_json: bool) -> Any:
    tables = _tables(target)
    tr = tables.tr
    if tables.tss is None:
        reason = tables.unavailable.get("tss", "TSS not readable")
        if as_json:
            return {"tr": {"selector": _hex(tr.selector)}, "unavailable": reason}
        from lhvdbg.ui.tables import plain

        return plain(f"tss: {reason} (TR selector {tr.selector:#06x}, base {tr.base:#x})")
    if as_json:
        return {
            "tr": {"selector": _hex(tr.selector), "base": _hex(tr.base), "limit": _hex(tr.limit)},
            "layout": tables.tss.layout.name,
            "fields": tables.tss.to_dict(),
            "missing": list(tables.tss.missing),
        }
    from lhvdbg.ui import tables as ui

    old_tables = _previous_tables(prev)
    if old_tables is not None:
        old = old_tables.tss
        if old is not None and old.layout is tables.tss.layout:
            title = f"{tables.tss.layout.name} at {tr.base:#x}"
            return ui.render_decoded(tables.tss, old, title=title)
    return ui.render_tss(tables.tss, base=tr.base)


def _controller(name: str, what: str, to_dict: Callable[[Any], Any]) -> ViewFunction:
    """The ``pic`` or ``lapic`` view: ``target.<name>()`` as JSON or ``render_<name>``."""

    def view(target: Target, arg: str | None, prev: Previous, as_json: bool) -> Any:
        state = getattr(target, name)()
        if state is None:
            raise UsageError(f"{name}: no {what} (not captured)")
        if as_json:
            return to_dict(state)
        from lhvdbg.ui import state_views

        old = getattr(prev.snapshot, name) if prev.snapshot is not None else None
        return getattr(state_views, f"render_{name}")(state, old)

    return view


_VIEW_FUNCTIONS: dict[str, ViewFunction] = {
    "regs": _regs,
    "sregs": _sregs,
    "cregs": _cregs,
    "gdt": _gdt,
    "idt": _idt,
    "tss": _tss,
    "pic": _controller("pic", "PIC state", pic_to_dict),
    "lapic": _controller("lapic", "local APIC state", lapic_to_dict),
}


def view_data(name: str, target: Target, arg: str | None = None) -> Any:
    """The JSON-ready data of view ``name``."""
    return _VIEW_FUNCTIONS[name](target, arg, Previous(), True)


def view_renderable(
    name: str, target: Target, arg: str | None = None, previous: Previous | None = None
) -> Any:
    """The rich renderable of view ``name`` (changes since ``previous`` marked)."""
    return _VIEW_FUNCTIONS[name](target, arg, previous or Previous(), False)


def run_view(
    name: str,
    target: Target,
    ctx: Context,
    *,
    arg: str | None = None,
    as_json: bool = False,
    previous: Previous | None = None,
) -> int:
    """Print one view of ``target`` (JSON or rendered); return the exit code."""
    if as_json:
        ctx.print_json(view_data(name, target, arg))
    else:
        ctx.print(view_renderable(name, target, arg, previous))
    return 0


# --- registration -----------------------------------------------------------------------


def _gdt_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "selector", nargs="?", help="one descriptor by selector (0x20; RPL/TI ignored)"
    )


def _idt_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "vector", nargs="?", help="one gate by vector (8, 0x20), or 'all' (default: present)"
    )


def _simple(name: str) -> Callable[[argparse.Namespace, Context], int]:
    def run(args: argparse.Namespace, ctx: Context) -> int:
        arg = getattr(args, "selector", None) or getattr(args, "vector", None)
        return run_view(
            name, ctx.require_target(), ctx, arg=arg, as_json=args.json, previous=previous_of(ctx)
        )

    run.__name__ = f"run_{name}"
    return run


_SUMMARIES: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None] | None]] = {
    "regs": ("instruction pointer, flags and general registers", None),
    "sregs": ("segment registers with hidden parts, LDTR, TR, GDTR, IDTR", None),
    "cregs": ("CR0, CR2, CR3, CR4 and EFER, decoded", None),
    "gdt": ("the GDT, or one descriptor", _gdt_args),
    "idt": ("the IDT's present gates, one gate, or all", _idt_args),
    "tss": ("the TSS that TR points to, decoded", None),
    "pic": ("the two 8259 PICs: bases, IRR, IMR, ISR", None),
    "lapic": ("the local APIC: timer, ISR/IRR, LVT", None),
}

for _name, (_summary, _configure) in _SUMMARIES.items():
    command(_name, _summary, configure=_configure, category="state", where=WHERE)(_simple(_name))


def _pt_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("va", nargs="+", help="linear address expression ($rsp, symbol, *EXPR)")


@command(
    "pt",
    "walk the page tables for a linear address",
    configure=_pt_args,
    category="state",
    where=WHERE,
)
def run_pt(args: argparse.Namespace, ctx: Context) -> int:
    """Translate VA through CR3's page tables (memory read through the target)."""
    from lhvdbg.x86.paging import walk

    target = ctx.require_target()
    cpu = target.cpu()
    from lhvdbg.commands._expr import evaluate

    va = evaluate(ctx, " ".join(args.va), target=target)
    result = walk(target.read_memory, cpu.cr3, cpu.cr4, cpu.efer, cpu.cr0, va)
    if args.json:
        ctx.print_json(
            {
                "va": _hex(result.va),
                "paging": result.paging,
                "steps": [
                    {
                        "level": s.level,
                        "name": s.name,
                        "table": _hex(s.table),
                        "index": s.index,
                        "entry_address": _hex(s.entry_address),
                        "entry": s.entry.to_dict() if s.entry is not None else None,
                        "raw": _hex(s.entry.raw) if s.entry is not None else None,
                    }
                    for s in result.steps
                ],
                "physical": _hex(result.physical) if result.physical is not None else None,
                "fault": result.fault,
                "page_size": result.page_size,
                "writable": result.writable,
                "user": result.user,
                "executable": result.executable,
            }
        )
        return 0
    from lhvdbg.ui.tables import render_page_walk

    ctx.print(render_page_walk(result))
    return 0
