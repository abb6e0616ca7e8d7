"""``lhvdbg diff-tss``: compare TR, the TSS descriptor and the TSS with a known-good one.

Every difference says whether it matters *now* (the CPU reads the TSS only for a
privilege change, an IST stack or a task switch). Where to look: ``--at SYMBOL``,
``--at-df`` (the vector-8 handler, or the triple fault), ``--after-ticks N`` (the timer
handler has run N times; the default is 1), or ``--snapshot FILE`` offline. In the shell it
compares the current target.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from lhvdbg.commands._boot import enter_kernel
from lhvdbg.commands._html import add_html_argument, check_html_path, write_html
from lhvdbg.commands.options import (
    add_launch_arguments,
    add_snapshot_argument,
    launch_config_from_args,
)
from lhvdbg.commands.registry import Context, command
from lhvdbg.errors import MachineError, TargetTimeout, UsageError

if TYPE_CHECKING:
    from lhvdbg.diagnose.events import ChainEvent
    from lhvdbg.machine.session import Session
    from lhvdbg.state.snapshot import Snapshot

DEFAULT_TIMEOUT = 10.0
DF_VECTOR = 8


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _configure(parser: argparse.ArgumentParser) -> None:
    add_launch_arguments(parser, default_variant="good")
    add_snapshot_argument(parser)
    parser.add_argument(
        "--reference",
        metavar="pebbles|lhv-amd64|lhv-i386|FILE",
        help="known-good snapshot (default: pebbles for i386, lhv-amd64 for amd64)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--at", metavar="SYMBOL", help="compare at this breakpoint")
    where.add_argument(
        "--at-df", action="store_true", help="compare at the vector-8 handler (or the reset)"
    )
    where.add_argument(
        "--after-ticks",
        type=_int,
        metavar="N",
        help="compare after the timer handler has run N times (default 1)",
    )
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS", help="per stop"
    )
    add_html_argument(parser)


def _stop(session: Session, args: argparse.Namespace) -> str:
    """Run to where the comparison is asked; a short description of the stop."""
    if args.at is not None:
        session.break_at(args.at)
        event = session.cont(timeout=args.timeout)
        wanted, reached = args.at, {"breakpoint"}
    elif args.at_df:
        enter_kernel(session)  # --timeout counts from the kernel's entry (KVM boots slowly)
        event = session.run_to_vector(DF_VECTOR, timeout=args.timeout)
        wanted, reached = "vector 8", {"vector", "shutdown"}  # a triple fault: post-mortem
    else:
        ticks = 1 if args.after_ticks is None else args.after_ticks
        if ticks < 1:
            raise UsageError("--after-ticks needs N >= 1")
        enter_kernel(session)
        event = session.run_to_timer(count=ticks, timeout=args.timeout)
        wanted, reached = f"timer tick {ticks}", {"vector"}
    if event.reason == "exited":
        raise MachineError(f"the guest ended before the comparison point: {event.detail}")
    if event.reason not in reached:  # the awaited stop never came: nothing to compare
        how = f"{event.reason}: {event.detail}" if event.detail else event.reason
        raise TargetTimeout(f"{wanted} never came within {args.timeout:g} s ({how})")
    return event.detail or event.reason


def _live(args: argparse.Namespace) -> tuple[Snapshot, list[ChainEvent], str]:
    from lhvdbg.diagnose.intlog import parse_int_log
    from lhvdbg.machine.session import Session

    config = launch_config_from_args(args)
    with Session(config) as session:
        where = _stop(session, args)
        snapshot = session.capture(note=f"diff-tss: {where}")
        events = parse_int_log(session.int_log_text()) if session.accel == "tcg" else []
    return snapshot, events, where


@command(
    "diff-tss",
    "compare TR, the TSS descriptor and the TSS with a known-good reference; say what matters",
    configure=_configure,
    category="diagnosis",
)
def run(args: argparse.Namespace, ctx: Context) -> int:
    """Capture (or load) the state, diff it against the reference, render."""
    from lhvdbg.commands._diagnosis import default_reference
    from lhvdbg.diagnose.tss_diff import diff_tss
    from lhvdbg.state.references import load_reference

    check_html_path(getattr(args, "html", None))
    events: list[ChainEvent] = []
    positioned = args.at is not None or args.at_df or args.after_ticks is not None
    if ctx.target is not None:
        if positioned:
            raise UsageError("--at/--at-df/--after-ticks apply to a new machine, not the shell's")
        snapshot = ctx.target.capture()
        if ctx.session is not None and getattr(ctx.session, "accel", None) == "tcg":
            from lhvdbg.diagnose.intlog import parse_int_log

            events = parse_int_log(ctx.session.int_log_text())
    elif getattr(args, "snapshot", None) is not None:
        if positioned:
            raise UsageError("--at/--at-df/--after-ticks need a machine, not --snapshot")
        from lhvdbg.state.snapshot import load_snapshot

        snapshot = load_snapshot(args.snapshot)
    else:
        snapshot, events, _where = _live(args)
    name = args.reference or default_reference(snapshot.arch)
    reference = load_reference(name)
    diff = diff_tss(snapshot, reference, reference_name=name, events=events)
    if args.json:
        ctx.print_json(diff.to_json())
    else:
        from lhvdbg.ui.report import render_tss_diff

        ctx.print(render_tss_diff(diff))
    if getattr(args, "html", None) is not None:
        from lhvdbg.diagnose.events import InterruptEvent
        from lhvdbg.ui.html import tss_diff_page

        vectors = [e.vector for e in events if isinstance(e, InterruptEvent)][-8:]
        page = tss_diff_page(diff, snapshot=snapshot, reference=reference, events_vectors=vectors)
        write_html(args.html, page)
    return 0
