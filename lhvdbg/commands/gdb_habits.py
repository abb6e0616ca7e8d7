"""What gdb users type without thinking: ``next``/``ni``, ``finish``, ``bt``, ``watch``/
``rwatch``/``awatch``, ``p EXPR``, ``info registers|breakpoints|symbol``, ``xp``.

Addresses are expressions (:mod:`lhvdbg.commands._expr`); instructions and frames are
read in the CPU's code mode (:mod:`lhvdbg.x86.disasm`, :mod:`lhvdbg.x86.frames`).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from lhvdbg.commands.control import (
    SHELL_CONTINUE_LIMIT,
    _interruptible,
    _list_breakpoints,
    _session,
    after_stop,
    examine,
)
from lhvdbg.commands.registry import Context, command
from lhvdbg.errors import MachineError, UsageError

if TYPE_CHECKING:
    from lhvdbg.machine.session import Session, StopEvent
    from lhvdbg.state.target import Target

WHERE = ("shell", "scenario")
_live = partial(command, where=WHERE, needs_live=True)


def function_start(symbols: Mapping[str, int]) -> Any:
    """``address -> start of the function named for it`` (None without a symbol)."""
    from lhvdbg.state.symbols import symbolize

    def start(address: int) -> int | None:
        name = symbolize(address, symbols)
        return symbols.get(name.split("+")[0]) if name else None

    return start


def _run_to(ctx: Context, session: Session, address: int) -> StopEvent:
    """Continue until ``address`` (a temporary breakpoint) or another stop."""
    from dataclasses import replace

    number = session.break_at(address, temporary=True, internal=True)
    try:
        event = _interruptible(ctx, lambda: session.cont(timeout=SHELL_CONTINUE_LIMIT))
    finally:
        if session.alive and number in session.breakpoint_numbers():
            session.delete(number)
    if event.reason == "breakpoint" and event.breakpoint == number:
        from lhvdbg.machine.stops import where

        at = where(address, session.symbolize)
        event = replace(event, reason="step", breakpoint=None, detail=f"at {at}")
    return event


# --- stepping ---------------------------------------------------------------------------


def _configure_next(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("count", nargs="?", type=int, default=1, help="instructions (default 1)")


@_live(
    "next",
    "step one instruction, over calls (runs the called function to its return)",
    configure=_configure_next,
    category="run",
    aliases=("ni", "nexti", "n"),
)
def next_command(args: argparse.Namespace, ctx: Context) -> int:
    from lhvdbg.ui.context import decode_at
    from lhvdbg.x86.disasm import code_mode

    if args.count < 1:
        raise UsageError(f"next: count must be at least 1, got {args.count}")
    session = _session(ctx)
    target = ctx.require_target()
    event: StopEvent | None = None
    for _ in range(args.count):
        cpu = target.cpu()
        mode = code_mode(cpu)
        pc = mode.linear(cpu.ip)
        insn = decode_at(target.read_memory, pc, mode, 1)[0]
        if insn.mnemonic.startswith("call"):
            event = _run_to(ctx, session, pc + insn.size)
        else:
            event = _interruptible(ctx, lambda: session.stepi(1))
        if event.reason != "step" or not session.alive:
            break
    assert event is not None
    after_stop(ctx, event, as_json=args.json)
    return 0


@_live(
    "finish",
    "run until the current function returns (return address from the frame pointer)",
    category="run",
)
def finish_command(args: argparse.Namespace, ctx: Context) -> int:
    from lhvdbg.x86.frames import return_address

    session = _session(ctx)
    target = ctx.require_target()
    cpu = target.cpu()
    start = function_start(target.symbols())
    address = return_address(cpu, target.read_memory, start)
    if address is None:
        raise UsageError("finish: cannot tell the return address (no frame pointer)")
    if not args.json:
        ctx.stdout.write(f"run till exit to {session.symbolize(address)} ({address:#x})\n")
    event = _run_to(ctx, session, address)
    after_stop(ctx, event, as_json=args.json)
    return 0


@command(
    "bt",
    "backtrace: the frame-pointer chain with symbols, in the CPU's mode",
    category="run",
    where=WHERE,
    aliases=("backtrace", "where"),
)
def bt_command(args: argparse.Namespace, ctx: Context) -> int:
    from lhvdbg.state.symbols import symbolize
    from lhvdbg.x86.frames import backtrace

    target = ctx.require_target()
    symbols = target.symbols()
    frames = backtrace(target.cpu(), target.read_memory, function_start(symbols))
    if args.json:
        ctx.print_json(
            [
                {"frame": f.number, "pc": f"{f.pc:#x}", "symbol": symbolize(f.pc, symbols)}
                for f in frames
            ]
        )
        return 0
    for f in frames:
        name = symbolize(f.pc, symbols)
        ctx.stdout.write(f"#{f.number:<2} {f.pc:#x}" + (f" in {name}" if name else "") + "\n")
    return 0


# --- watchpoints ------------------------------------------------------------------------


def _configure_watch(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("expression", nargs="+", help="address expression (symbol, $reg, *EXPR)")
    parser.add_argument(
        "--size",
        type=int,
        choices=(1, 2, 4, 8),
        help="bytes watched (default: the kernel's word, 8 on amd64, 4 on i386)",
    )


def _watch(access: str) -> Any:
    def run(args: argparse.Namespace, ctx: Context) -> int:
        from lhvdbg.commands._expr import evaluate

        session = _session(ctx)
        target = ctx.require_target()
        # gdb's `watch *ADDR` watches the memory at ADDR
        address = evaluate(ctx, " ".join(args.expression).strip().removeprefix("*"))
        # the kernel's word (a watch set at reset, in real mode, still means the kernel's)
        size = args.size or (8 if target.arch == "amd64" else 4)
        number = session.watch(address, size, access=access)
        if args.json:
            ctx.print_json({"number": number, "address": f"{address:#x}", "size": size})
            return 0
        kind = {"write": "watchpoint", "read": "read watchpoint", "access": "access watchpoint"}
        ctx.stdout.write(
            f"{kind[access]} {number}: {size} bytes at {session.symbolize(address)}"
            f" ({address:#x})\n"
        )
        return 0

    return run


for _name, _access, _what in (
    ("watch", "write", "writes to"),
    ("rwatch", "read", "reads of"),
    ("awatch", "access", "reads of or writes to"),
):
    _live(
        _name,
        f"stop on {_what} an address (hardware watchpoint; TCG)",
        configure=_configure_watch,
        category="run",
    )(_watch(_access))


# --- values -----------------------------------------------------------------------------


def _configure_print(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("expression", nargs="+", help="e.g. $rsp, *$rsp, idt+0x80, kernel_main")


@command(
    "p",
    "print the value of an expression in hex, with its symbol",
    configure=_configure_print,
    category="memory",
    where=WHERE,
    aliases=("print",),
)
def print_command(args: argparse.Namespace, ctx: Context) -> int:
    from lhvdbg.commands._expr import evaluate
    from lhvdbg.state.symbols import symbolize

    target = ctx.require_target()
    value = evaluate(ctx, " ".join(args.expression))
    name = symbolize(value, target.symbols())
    if args.json:
        ctx.print_json({"value": value, "hex": f"{value:#x}", "symbol": name})
        return 0
    ctx.stdout.write(f"{value:#x}" + (f" <{name}>" if name else "") + f"  ({value})\n")
    return 0


INFO_TOPICS = ("registers", "breakpoints", "symbol")


def _configure_info(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topic", help="registers [NAME], breakpoints, symbol ADDR (or a prefix)")
    parser.add_argument("rest", nargs="*", help="a register name, or an address expression")


@command(
    "info",
    "info registers [NAME] | info breakpoints | info symbol ADDR, as in gdb",
    configure=_configure_info,
    category="views",
    where=WHERE,
    aliases=("i",),
)
def info_command(args: argparse.Namespace, ctx: Context) -> int:
    topics = [t for t in INFO_TOPICS if t.startswith(args.topic)] if args.topic else []
    if len(topics) != 1:
        raise UsageError(f"info {args.topic}: use info {' | info '.join(INFO_TOPICS)}")
    topic = topics[0]
    if topic == "breakpoints":
        return _list_breakpoints(_session(ctx), ctx, args.json)
    if topic == "symbol":
        return _info_symbol(ctx, " ".join(args.rest), args.json)
    if not args.rest:
        from lhvdbg.commands.views import previous_of, run_view

        target = ctx.require_target()
        return run_view("regs", target, ctx, as_json=args.json, previous=previous_of(ctx))
    from lhvdbg.commands._expr import registers_of

    regs = registers_of(ctx.require_target().cpu())
    rows = []
    for word in args.rest:
        name = word.lstrip("$").lower()
        if name not in regs:
            raise UsageError(f"info registers: no register {word}")
        rows.append((name, regs[name]))
    if args.json:
        ctx.print_json({n: f"{v:#x}" for n, v in rows})
        return 0
    for name, value in rows:
        ctx.stdout.write(f"{name:<8} {value:#x}\n")
    return 0


def _info_symbol(ctx: Context, text: str, as_json: bool) -> int:
    from lhvdbg.commands._expr import evaluate
    from lhvdbg.state.symbols import symbolize

    if not text:
        raise UsageError("info symbol: give an address, e.g. info symbol $pc")
    target = ctx.require_target()
    value = evaluate(ctx, text)
    name = symbolize(value, target.symbols())
    if as_json:
        ctx.print_json({"address": f"{value:#x}", "symbol": name})
        return 0
    ctx.stdout.write(f"{value:#x} is {name}\n" if name else f"no symbol matches {value:#x}\n")
    return 0


# --- physical memory --------------------------------------------------------------------

_XP_LINE = re.compile(r"^\s*([0-9a-fA-F]+):((?:\s+0x[0-9a-fA-F]{2})+)\s*$")
_XP_CHUNK = 512


class PhysicalMemory:
    """A target whose memory reads are physical (QEMU's ``xp``); the rest is the live one."""

    def __init__(self, target: Target, session: Session) -> None:
        self._target = target
        self._session = session

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)

    def read_memory(self, address: int, size: int) -> bytes:
        out = bytearray()
        while len(out) < size:
            n = min(_XP_CHUNK, size - len(out))
            text = self._session.hmp(f"xp /{n}xb {address + len(out):#x}")
            got = parse_xp(text)
            if len(got) != n:
                raise MachineError(f"xp: cannot read physical memory at {address:#x}: {text}")
            out += got
        return bytes(out)


def parse_xp(text: str) -> bytes:
    """The bytes of HMP ``xp /Nxb`` output (``0000000000100000: 0x02 0xb0 ...`` lines)."""
    out = bytearray()
    for line in text.splitlines():
        match = _XP_LINE.match(line)
        if match:
            out += bytes(int(b, 16) for b in match.group(2).split())
    return bytes(out)


def _configure_xp(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("format", nargs="?", help="/[count][xduotcasi][bhwg], as in gdb")
    parser.add_argument("address", nargs="?", help="physical address expression")


@_live(
    "xp",
    "examine physical memory: xp/FMT ADDR (as x, through QEMU's xp)",
    configure=_configure_xp,
    category="memory",
)
def xp_command(args: argparse.Namespace, ctx: Context) -> int:
    fmt_text, address_text = args.format, args.address
    if fmt_text is not None and not fmt_text.startswith("/") and address_text is None:
        fmt_text, address_text = None, fmt_text
    if address_text is None:
        raise UsageError("xp: give a physical address, e.g. xp/4gx 0x1000")
    target = PhysicalMemory(ctx.require_target(), _session(ctx))
    return examine(ctx, target, fmt_text, address_text, as_json=args.json, command_name="xp")
