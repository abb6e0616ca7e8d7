"""Shell and scenario commands that drive or inspect the session: breakpoints, run control,
console, interrupt log, raw gdb/HMP pass-through, reset, memory examine, snapshots.

Run-control commands need a live session (``ctx.session``); ``x``, ``save`` and
``snapdiff`` also work on a snapshot. Each stop is recorded with
:func:`lhvdbg.scenario.stops.note_stop`, so the views can highlight what changed.
In the shell, ``snapshot save FILE`` and ``snapshot diff A B`` are spellings of ``save``
and ``snapdiff`` (the CLI ``snapshot`` command captures from a new machine).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from lhvdbg.commands.registry import Command, Context, command
from lhvdbg.errors import UsageError
from lhvdbg.x86.vectors import DOUBLE_FAULT

if TYPE_CHECKING:
    from lhvdbg.machine.session import Session, StopEvent

WHERE = ("shell", "scenario")
# A `continue` in the shell runs until a stop or Ctrl-C; this bounds it all the same.
SHELL_CONTINUE_LIMIT = 24 * 3600.0
# gdb CLI commands that would change run state behind the session's back.
_GDB_RUN_COMMANDS = {
    "c", "continue", "fg", "s", "step", "si", "stepi", "n", "next", "ni", "nexti", "finish",
    "until", "u", "advance", "r", "run", "start", "starti", "jump", "j", "signal", "kill",
    "detach", "disconnect", "q", "quit", "target", "interrupt",
}  # fmt: skip
# HMP commands that stop or resume the VM behind gdb (gdb alone controls run state).
_HMP_RUN_COMMANDS = {"stop", "cont", "c", "gdbserver", "singlestep"}
# What `snapshot save|diff` in the shell means.
SHELL_PHRASES = {("snapshot", "save"): "save", ("snapshot", "diff"): "snapdiff"}


#: ``@command`` for the shell and scenarios, needing a live session.
_live = partial(command, where=WHERE, needs_live=True)


def _session(ctx: Context) -> Session:
    session: Session | None = ctx.session
    if session is None:
        raise UsageError("this needs a live machine: start the shell without --snapshot")
    return session


def after_stop(ctx: Context, event: StopEvent, *, as_json: bool = False) -> None:
    """Record a stop and say where the guest is."""
    from lhvdbg.scenario.stops import note_stop

    note_stop(ctx, event)
    if as_json:
        ctx.print_json(event.to_dict())
        return
    detail = event.detail or (f"at {event.address:#x}" if event.address is not None else "")
    line: str = event.reason
    if detail:
        line = detail if detail.startswith(event.reason) else f"{event.reason}: {detail}"
    ctx.stdout.write(line + "\n")
    if event.reason == "exited":
        ctx.stdout.write("QEMU has exited; type reset to start it again\n")
        return
    from lhvdbg.commands.context import show_after_stop

    show_after_stop(ctx, event)


def _interruptible(ctx: Context, run: Any) -> StopEvent:
    """Run ``run()``; Ctrl-C interrupts the guest and returns that stop instead."""
    try:
        event: StopEvent = run()
    except KeyboardInterrupt:
        event = _session(ctx).interrupt()
    return event


# --- breakpoints -----------------------------------------------------------------------


def _configure_break(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "location", nargs="*", help="symbol, address or expression ($pc+8, *ADDR); none: list"
    )
    parser.add_argument("--temporary", action="store_true", help="delete it when hit")


def _set_break(args: argparse.Namespace, ctx: Context, hardware: bool | None) -> int:
    session = _session(ctx)
    if not args.location:
        return _list_breakpoints(session, ctx, args.json)
    from lhvdbg.commands._expr import evaluate

    text = " ".join(args.location).strip().removeprefix("*")  # gdb: break *ADDR
    symbols = ctx.require_target().symbols()
    address = symbols[text] if text in symbols else evaluate(ctx, text)
    for other in session.breakpoints():
        if other.get("address") == address and other.get("type", "breakpoint") == "breakpoint":
            raise UsageError(
                f"breakpoint {other.get('number')} is already at {session.symbolize(address)}"
                f" ({address:#x})"
            )
    location: str | int = text if text in symbols else address
    number = session.break_at(location, hardware=hardware, temporary=args.temporary)
    entry = next((b for b in session.breakpoints() if b.get("number") == number), {})
    if args.json:
        ctx.print_json(_bp_json(entry) if entry else {"number": number})
        return 0
    kind = "hardware breakpoint" if entry.get("hardware") else "breakpoint"
    # the name asked for, when it was one (gdb: `break _start` says _start, not an alias)
    shown = text if text in symbols else session.symbolize(address)
    where = f" at {shown} ({address:#x})" if shown != f"{address:#x}" else f" at {shown}"
    ctx.stdout.write(f"{kind} {number}{where}\n")
    return 0


def _bp_json(entry: dict[str, object]) -> dict[str, object]:
    out = dict(entry)
    if isinstance(out.get("address"), int):
        out["address"] = f"{out['address']:#x}"
    return out


def _list_breakpoints(session: Session, ctx: Context, as_json: bool) -> int:
    entries = session.breakpoints()
    if as_json:
        ctx.print_json([_bp_json(e) for e in entries])
        return 0
    if not entries:
        ctx.stdout.write("no breakpoints\n")
        return 0
    for e in entries:
        address = e.get("address")
        shown = f"{address:#x}" if isinstance(address, int) else "?"
        kind = "hw" if e.get("hardware") else "sw"
        ctx.stdout.write(
            f"{e.get('number'):>3}  {kind}  {shown:<12} {e.get('location', '')}"
            f"  hits {e.get('hits', 0)}\n"
        )
    return 0


@_live(
    "break",
    "set a breakpoint at LOC (software under TCG); with no LOC, list breakpoints",
    configure=_configure_break,
    category="run",
    aliases=("b",),
)
def break_command(args: argparse.Namespace, ctx: Context) -> int:
    return _set_break(args, ctx, None)


@_live(
    "hbreak",
    "set a hardware breakpoint at LOC (works under KVM too)",
    configure=_configure_break,
    category="run",
)
def hbreak_command(args: argparse.Namespace, ctx: Context) -> int:
    return _set_break(args, ctx, True)


def _configure_delete(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("number", nargs="?", type=int, help="breakpoint number; none: all")


@_live(
    "delete",
    "delete breakpoint N, or all breakpoints",
    configure=_configure_delete,
    category="run",
    aliases=("d",),
)
def delete_command(args: argparse.Namespace, ctx: Context) -> int:
    _session(ctx).delete(args.number)
    if args.number is None:
        return _reply(ctx, args.json, {"deleted": "all"}, "deleted all breakpoints")
    return _reply(ctx, args.json, {"deleted": args.number}, f"deleted breakpoint {args.number}")


# --- run control -----------------------------------------------------------------------


def _configure_continue(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="interrupt the guest after S seconds (default: run until a stop or Ctrl-C)",
    )


@_live(
    "continue",
    "run until a breakpoint, a fault, QEMU exiting, the timeout, or Ctrl-C",
    configure=_configure_continue,
    category="run",
    aliases=("c", "cont"),
)
def continue_command(args: argparse.Namespace, ctx: Context) -> int:
    session = _session(ctx)
    timeout = args.timeout if args.timeout is not None else SHELL_CONTINUE_LIMIT
    event = _interruptible(ctx, lambda: session.cont(timeout=timeout))
    after_stop(ctx, event, as_json=args.json)
    return 0


def _configure_stepi(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("count", nargs="?", type=int, default=1, help="instructions (default 1)")


@_live(
    "stepi",
    "execute N instructions (default 1)",
    configure=_configure_stepi,
    category="run",
    aliases=("si",),
)
def stepi_command(args: argparse.Namespace, ctx: Context) -> int:
    if args.count < 1:
        raise UsageError(f"stepi: count must be at least 1, got {args.count}")
    session = _session(ctx)
    event = _interruptible(ctx, lambda: session.stepi(args.count))
    after_stop(ctx, event, as_json=args.json)
    return 0


def _configure_until_df(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout", type=float, default=10.0, metavar="S", help="give up after S seconds"
    )


@_live(
    "until-df",
    "run until the CPU enters the vector-8 handler (or a triple fault), then diagnose",
    configure=_configure_until_df,
    category="run",
)
def until_df_command(args: argparse.Namespace, ctx: Context) -> int:
    session = _session(ctx)
    event = _interruptible(ctx, lambda: session.run_to_vector(DOUBLE_FAULT, timeout=args.timeout))
    reached = event.reason in ("vector", "shutdown") and session.alive
    if args.json:
        from lhvdbg.scenario.stops import note_stop

        note_stop(ctx, event)
        report = _diagnose_json(ctx) if reached else None
        ctx.print_json({"stop": event.to_dict(), "report": report})
        return 0
    after_stop(ctx, event)
    if not reached:
        ctx.stdout.write("no vector 8: nothing to diagnose\n")
        return 0
    cmd = _diagnose_command()
    return cmd.run(cmd.parser().parse_args([]), ctx)


def _diagnose_command() -> Command:
    from lhvdbg.commands.registry import REGISTRY

    return REGISTRY.get("diagnose")


def _diagnose_json(ctx: Context) -> Any:
    """The registry's ``diagnose --json`` on this session, parsed."""
    import io
    import json

    cmd = _diagnose_command()
    out = io.StringIO()
    sub = Context(stdout=out, color=False, target=ctx.target, session=ctx.session, state=ctx.state)
    cmd.run(cmd.parser().parse_args(["--json"]), sub)
    return json.loads(out.getvalue())


# --- console and logs ------------------------------------------------------------------


def _configure_serial(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--lines", type=int, metavar="N", help="only the last N lines")
    parser.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="run the guest and print console output as it comes, until a stop or Ctrl-C",
    )


@_live(
    "serial",
    "show the guest's serial console output (--follow: run and stream it)",
    configure=_configure_serial,
    category="machine",
)
def serial_command(args: argparse.Namespace, ctx: Context) -> int:
    session = _session(ctx)
    text = session.serial_text()
    if args.json:
        ctx.print_json({"serial": text})
        return 0
    shown = text
    if args.lines is not None:
        shown = "".join(text.splitlines(keepends=True)[-args.lines :]) if args.lines > 0 else ""
    _write(ctx, shown)
    if args.follow:
        _follow(ctx, session, len(text))
    return 0


def _follow(ctx: Context, session: Session, seen: int) -> None:
    """Run the guest, printing console output as it comes, until a stop or Ctrl-C."""
    printed = seen

    def show_new() -> None:
        nonlocal printed
        text = session.serial_text()
        if len(text) > printed:
            ctx.stdout.write(text[printed:])
            ctx.stdout.flush()
            printed = len(text)

    event = _interruptible(ctx, lambda: session.cont(timeout=SHELL_CONTINUE_LIMIT, poll=show_new))
    show_new()
    after_stop(ctx, event)


def _configure_log(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-n", "--last", type=int, default=20, metavar="N", help="the last N events (default 20)"
    )
    parser.add_argument("--all", action="store_true", help="every event so far")


@_live(
    "log",
    "the interrupts and exceptions delivered so far (QEMU's -d int log, TCG only)",
    configure=_configure_log,
    category="machine",
)
def log_command(args: argparse.Namespace, ctx: Context) -> int:
    from lhvdbg.diagnose.events import CpuReset, InterruptEvent, TripleFault
    from lhvdbg.diagnose.intlog import parse_int_log

    session = _session(ctx)
    if session.accel != "tcg":
        raise UsageError("no interrupt log under KVM (QEMU's -d int works under TCG only)")
    events = parse_int_log(session.int_log_text())
    shown = events if args.all else events[-args.last :] if args.last > 0 else []
    if args.json:
        ctx.print_json(
            {
                "total": len(events),
                "events": [_event_json(e) for e in shown],
            }
        )
        return 0
    if not events:
        ctx.stdout.write("no interrupt or exception delivered yet\n")
        return 0
    symbols = ctx.require_target().symbols()
    if len(shown) < len(events):
        ctx.stdout.write(f"... {len(events) - len(shown)} earlier events (log --all)\n")
    for e in shown:
        if isinstance(e, InterruptEvent):
            ctx.stdout.write(_event_line(e, symbols) + "\n")
        elif isinstance(e, TripleFault):
            ctx.stdout.write(f"line {e.line}: triple fault\n")
        elif isinstance(e, CpuReset):
            ctx.stdout.write(f"line {e.line}: CPU reset\n")
    return 0


def _event_line(e: Any, symbols: Any) -> str:
    from lhvdbg.state.symbols import symbolize
    from lhvdbg.x86.vectors import vector_name

    name = vector_name(e.vector) if e.source == "exception" else f"{e.vector:#04x}"
    where = symbolize(e.rip, symbols) or f"{e.rip:#x}"
    if not e.delivered:  # a check_exception with no v= line: folded into #DF/triple fault
        return f"{'':>6}  {name} raised at {where}, folded (never delivered; line {e.line})"
    code = f" error {e.error_code:#x}" if e.error_code is not None else ""
    return f"{e.sequence:>6}  v={e.vector:02x} {name:<6} {e.source:<9} at {where}{code}"


def _event_json(e: Any) -> dict[str, object]:
    from dataclasses import asdict

    out = asdict(e)
    out["kind"] = type(e).__name__
    return out


# --- pass-through and reset ------------------------------------------------------------


def _configure_words(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("words", nargs=argparse.REMAINDER, help="the command, as typed")


def _pass_through(
    name: str,
    summary: str,
    *,
    example: str,
    forbidden: set[str],
    why: str,
    send: Callable[[Session, str], str],
) -> None:
    """Register ``name WORDS...``: the words as one line to ``send``, and its reply shown."""

    @_live(name, summary, configure=_configure_words, category="machine")
    def run(args: argparse.Namespace, ctx: Context) -> int:
        if not args.words:
            raise UsageError(f"{name}: give a command, e.g. {name} {example}")
        if args.words[0] in forbidden:
            raise UsageError(f"{name} {args.words[0]}: {why}")
        text = send(_session(ctx), " ".join(args.words))
        ctx.state.pop("snapshot", None)  # the command may have changed registers or memory
        return _reply(ctx, args.json, {"output": text}, text)


_pass_through(
    "gdb",
    "run a gdb CLI command on the session's gdb and show its output",
    example="info registers rip",
    forbidden=_GDB_RUN_COMMANDS,
    why="run control goes through the shell (continue, stepi, break, delete) so the "
    "session keeps track",
    send=lambda session, line: _gdb_console(session, line),
)
_pass_through(
    "monitor",
    "run a QEMU monitor (HMP) command, e.g. monitor info pic",
    example="info registers",
    forbidden=_HMP_RUN_COMMANDS,
    why="gdb alone controls run state; use continue/stepi or Ctrl-C",
    send=lambda session, line: session.hmp(line),
)


def _gdb_console(session: Session, line: str) -> str:
    """The output of one gdb CLI command, and only its own: the text gdb printed on its
    own after the last stop (``Breakpoint 1, pit_init (hz=100) at src/pit.c:15``) is read
    and dropped by an empty ``echo`` first."""
    session.gdb.console("echo")
    return session.gdb.console(line).console()


def _reply(ctx: Context, as_json: bool, data: object, text: str) -> int:
    """Print ``data`` as JSON, or ``text`` ending in a newline; exit code 0."""
    if as_json:
        ctx.print_json(data)
    else:
        _write(ctx, text)
    return 0


def _write(ctx: Context, text: str) -> None:
    """``text``, with a final newline if it lacks one (nothing for empty text)."""
    ctx.stdout.write(text if not text or text.endswith("\n") else text + "\n")


@_live(
    "reset",
    "restart QEMU and gdb with the same configuration (breakpoints are not kept)",
    category="machine",
)
def reset_command(args: argparse.Namespace, ctx: Context) -> int:
    session = _session(ctx)
    start = time.monotonic()
    session.reset()
    ctx.target = session.target
    kept = {k: ctx.state[k] for k in ("context",) if k in ctx.state}
    ctx.state.clear()
    ctx.state.update(kept)
    elapsed = time.monotonic() - start
    text = f"machine restarted in {elapsed:.2f} s; the CPU waits at reset"
    return _reply(ctx, args.json, {"reset": True, "elapsed": round(elapsed, 3)}, text)


# --- memory ----------------------------------------------------------------------------


def _configure_x(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("format", nargs="?", help="/[count][xduotcasi][bhwg], as in gdb")
    parser.add_argument(
        "address", nargs="?", help="expression: number, symbol, $reg, + and -, *EXPR"
    )
    parser.add_argument(
        "--bits",
        type=int,
        choices=(16, 32, 64),
        help="x/i: decode as 16/32/64-bit code (default: the CPU's mode now)",
    )


@command(
    "x",
    "examine memory: x/FMT ADDR as in gdb (x/8xb $rsp, x/4gx idt, x/s msg)",
    configure=_configure_x,
    category="memory",
    where=WHERE,
)
def x_command(args: argparse.Namespace, ctx: Context) -> int:
    fmt_text, address_text = args.format, args.address
    if fmt_text is not None and not fmt_text.startswith("/") and address_text is None:
        fmt_text, address_text = None, fmt_text
    if address_text is None:
        raise UsageError("x: give an address, e.g. x/8xb $rsp")
    target = ctx.require_target()
    return examine(ctx, target, fmt_text, address_text, as_json=args.json, bits=args.bits)


def examine(
    ctx: Context,
    target: Any,
    fmt_text: str | None,
    address_text: str,
    *,
    as_json: bool,
    command_name: str = "x",
    bits: int | None = None,
) -> int:
    """``x`` on ``target`` (``xp`` hands a physical-memory target)."""
    from lhvdbg.commands._expr import current_mode, evaluate
    from lhvdbg.ui.examine import parse_format, render_memory, units

    pointer = 8 if target.arch == "amd64" else 4
    fmt = parse_format(fmt_text, ctx.state.get("x_format"), pointer_size=pointer)
    ctx.state["x_format"] = fmt
    symbols = target.symbols()
    address = evaluate(ctx, address_text, target=target)
    if fmt.letter == "i":
        from lhvdbg.ui.context import decode_at, render_instructions
        from lhvdbg.x86.disasm import mode_for_bits

        mode = current_mode(target) if bits is None else mode_for_bits(bits)
        instructions = decode_at(target.read_memory, address, mode, fmt.count)
        pc = current_mode(target).linear(target.cpu().ip)
        if as_json:
            ctx.print_json(
                {
                    "address": f"{address:#x}",
                    "mode": mode.name,
                    "bits": mode.bits,
                    "instructions": [
                        {"address": f"{i.address:#x}", "bytes": i.raw.hex(), "text": i.text}
                        for i in instructions
                    ],
                }
            )
            return 0
        if instructions:
            end = instructions[-1].address + instructions[-1].size
            forced = f" --bits {bits}" if bits is not None else ""
            ctx.state["repeat"] = f"{command_name} /{fmt.count}i {end:#x}{forced}"
        lines = render_instructions(instructions, pc, symbols)
        ctx.stdout.write("\n".join(lines) + "\n")
        return 0
    size = 256 if fmt.letter == "s" else fmt.count * fmt.size
    data = target.read_memory(address, size)
    if fmt.letter != "s":  # Enter goes on after what was shown, as in gdb
        ctx.state["repeat"] = f"{command_name} {fmt.text()} {address + size:#x}"
    if as_json:
        values = units(data, fmt) if fmt.letter != "s" else None
        ctx.print_json(
            {
                "address": f"{address:#x}",
                "format": fmt.text(),
                "bytes": data.hex(),
                "values": values,
            }
        )
        return 0
    label = _labeler(symbols)
    ctx.stdout.write(render_memory(address, data, fmt, label=label, symbolize=label))
    return 0


def _labeler(symbols: Any) -> Any:
    from lhvdbg.state.symbols import symbolize

    def label(address: int) -> str:
        return symbolize(address, symbols) or ""

    return label


# --- snapshots -------------------------------------------------------------------------


def _configure_save(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="where to write the snapshot (JSON)")
    parser.add_argument("--note", default="", help="free text stored in the provenance")


@command(
    "save",
    "save the current state as a snapshot file (shell: snapshot save FILE)",
    configure=_configure_save,
    category="snapshot",
    where=WHERE,
)
def save_command(args: argparse.Namespace, ctx: Context) -> int:
    from dataclasses import replace

    from lhvdbg.scenario.stops import current_snapshot
    from lhvdbg.state.snapshot import save_snapshot

    snapshot = current_snapshot(ctx)
    if args.note:
        snapshot = replace(snapshot, provenance=replace(snapshot.provenance, note=args.note))
    save_snapshot(snapshot, args.file)
    regions = ", ".join(r.label for r in snapshot.memory)
    text = f"saved {args.file} ({snapshot.arch}, {snapshot.cpu.mode}; {regions})"
    return _reply(ctx, args.json, {"saved": str(args.file), "regions": len(snapshot.memory)}, text)


def _configure_snapdiff(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", metavar="A", help="snapshot file, reference name, or . (now)")
    parser.add_argument("b", metavar="B", nargs="?", default=".", help="the same (default: .)")


@command(
    "snapdiff",
    "compare two snapshots field by field; . is the current state (shell: snapshot diff A B)",
    configure=_configure_snapdiff,
    category="snapshot",
    where=WHERE,
)
def snapdiff_command(args: argparse.Namespace, ctx: Context) -> int:
    from lhvdbg.commands.diff import print_diff
    from lhvdbg.scenario.stops import current_snapshot
    from lhvdbg.state.references import load_reference

    a, b = (current_snapshot(ctx) if x == "." else load_reference(x) for x in (args.a, args.b))
    names = (args.a, args.b)
    return print_diff(ctx, a, b, names=names, as_json=args.json, provenance=False)
