"""``lhvdbg snapshot``: boot, stop somewhere, capture the machine state to a JSON file.

Where to stop: ``--at SYMBOL|ADDRESS`` (a breakpoint), ``--after-ticks N`` (the handler
the IDT gives for the timer vector has run N times; found from the IDT and the PIC/LAPIC,
not from names), ``--vector V`` (the handler of vector V entered once), ``--until-stop``
(run until the guest stops by itself: a triple fault is captured post-mortem). They
combine in that order; with none, the state at the first instruction is captured.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from lhvdbg.commands._boot import enter_kernel
from lhvdbg.commands.options import add_launch_arguments, launch_config_from_args
from lhvdbg.commands.registry import Context, command
from lhvdbg.errors import MachineError, TargetTimeout, UsageError

if TYPE_CHECKING:
    from lhvdbg.machine.session import Session, StopEvent
    from lhvdbg.state.snapshot import Snapshot


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _configure(parser: argparse.ArgumentParser) -> None:
    add_launch_arguments(parser)
    parser.add_argument("--at", metavar="SYMBOL|ADDRESS", help="stop at this breakpoint")
    parser.add_argument(
        "--after-ticks",
        type=_int,
        metavar="N",
        help="stop when the timer vector's IDT handler has run N times",
    )
    parser.add_argument(
        "--vector", type=_int, metavar="V", help="stop when IDT[V]'s handler is entered"
    )
    parser.add_argument(
        "--until-stop",
        action="store_true",
        help="run until the guest stops by itself (triple fault) or the timeout",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, metavar="S", help="seconds per stop (10)"
    )
    parser.add_argument("--note", default="", help="free text stored in the provenance")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="FILE")


def _require_stopped(event: StopEvent, what: str, timeout: float) -> None:
    if event.reason == "exited":
        raise MachineError(f"the guest ended before {what}: {event.detail}")
    if event.reason == "timeout":
        raise TargetTimeout(f"{what} not reached within {timeout:g} s ({event.detail})")
    if event.reason == "shutdown":
        raise MachineError(f"the guest shut down (triple fault?) before {what}")


def stop_where_asked(session: Session, args: argparse.Namespace) -> list[str]:
    """Run the session to the requested point; the stop descriptions, in order."""
    stops: list[str] = []
    if args.after_ticks is not None and args.after_ticks < 1:
        raise UsageError("--after-ticks needs N >= 1")
    if args.at is not None:
        number = session.break_at(args.at)
        event = session.cont(timeout=args.timeout)
        _require_stopped(event, args.at, args.timeout)
        session.delete(number)
        stops.append(event.detail)
    if args.at is None and (args.after_ticks or args.vector is not None or args.until_stop):
        enter_kernel(session)  # --timeout counts from the kernel's entry (KVM boots slowly)
    if args.after_ticks is not None:
        event = session.run_to_timer(count=args.after_ticks, timeout=args.timeout)
        _require_stopped(event, f"timer tick {args.after_ticks}", args.timeout)
        stops.append(event.detail)
    if args.vector is not None:
        event = session.run_to_vector(args.vector, timeout=args.timeout)
        _require_stopped(event, f"vector {args.vector:#x}", args.timeout)
        stops.append(event.detail)
    if args.until_stop:
        event = session.cont(timeout=args.timeout)
        if event.reason == "exited":
            raise MachineError(f"the guest ended before it stopped: {event.detail}")
        if event.reason == "timeout":  # still running: no stop to save
            raise TargetTimeout(
                f"--until-stop: the guest did not stop within {args.timeout:g} s "
                "(nothing saved; a longer --timeout, or --at/--vector)"
            )
        stops.append(event.detail)
    if not stops:
        stops.append("at the first instruction (QEMU started with -S)")
    return stops


def summary(snap: Snapshot, path: Path, ms: float) -> dict[str, object]:
    """What the command reports about the file it wrote."""
    cpu = snap.cpu
    return {
        "file": str(path),
        "arch": snap.arch,
        "mode": cpu.mode,
        "ip": f"{cpu.ip:#x}",
        "regions": [r.label for r in snap.memory],
        "accel": snap.provenance.accel,
        "stop_reason": snap.provenance.stop_reason,
        "capture_ms": round(ms, 2),
    }


@command(
    "snapshot",
    "boot, stop (at a symbol, after N timer ticks, ...) and save the machine state",
    configure=_configure,
    category="machine",
    where={"cli"},
    json="print a JSON summary",
)
def run(args: argparse.Namespace, ctx: Context) -> int:
    """Launch, stop where asked, capture, write."""
    from lhvdbg.machine.session import Session
    from lhvdbg.state.snapshot import save_snapshot

    config = launch_config_from_args(args)
    with Session(config) as session:
        stops = stop_where_asked(session, args)
        started = time.perf_counter()
        snap = session.target.capture(note=args.note, stop_reason="; ".join(stops))
        ms = (time.perf_counter() - started) * 1e3
        where = session.symbolize(snap.cpu.ip)
        notes = list(session.notes)
    save_snapshot(snap, args.output)
    info = summary(snap, args.output, ms)
    if notes:
        info["notes"] = notes
    if args.json:
        ctx.print_json(info)
        return 0
    ctx.stdout.write(
        f"snapshot: wrote {args.output} ({snap.arch}, {snap.cpu.mode} mode, ip {where}, "
        f"{len(snap.memory)} regions, {snap.provenance.accel}, capture {ms:.1f} ms)\n"
        f"stopped: {'; '.join(stops)}\n"
    )
    for note in notes:
        ctx.stdout.write(f"note: {note}\n")
    return 0
