"""``lhvdbg break-on-df``: boot, stop at vector 8 (or the triple fault), say why it fired.

Works on any multiboot kernel, stripped too: the vector-8 handler is found from the IDT
once the kernel runs ``lidt`` (``Session.run_to_vector``), not from symbol names. Under
TCG the ``-d int`` log gives the whole chain; under KVM the frame on the handler's stack,
the PIC/LAPIC state and the registers do. Exit status 0 whenever the run completed,
whatever the outcome. Also registers ``diagnose`` for the shell and scenarios: the same
diagnosis of wherever the live session (or snapshot) is now.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from lhvdbg.commands._boot import DEFAULT_BOOT_TIMEOUT
from lhvdbg.commands._html import add_html_argument, check_html_path, write_html
from lhvdbg.commands._watch import RunInterrupted, RunWatch
from lhvdbg.commands.options import add_launch_arguments, launch_config_from_args
from lhvdbg.commands.registry import Context, command
from lhvdbg.errors import UsageError
from lhvdbg.signals import EXIT_INTERRUPTED

if TYPE_CHECKING:
    from lhvdbg.diagnose.events import ChainEvent

DEFAULT_TIMEOUT = 10.0
DF_VECTOR = 8
SWITCH_INTERVAL = 0.0005  # seconds: see WarmUp


def _configure(parser: argparse.ArgumentParser) -> None:
    add_launch_arguments(parser, default_variant="pic-unremapped")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"give up waiting for vector 8 after this long, counted from the kernel's "
        f"entry (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--boot-timeout",
        type=float,
        default=DEFAULT_BOOT_TIMEOUT,
        metavar="SECONDS",
        help="give up waiting for the kernel's entry point (firmware and loader) after "
        f"this long (default {DEFAULT_BOOT_TIMEOUT:g}; a KVM guest may spend seconds in "
        "the BIOS)",
    )
    parser.add_argument(
        "--reference",
        metavar="NAME|FILE",
        help="known-good snapshot to weigh differences against "
        "(default: pebbles for i386, lhv-amd64 for amd64)",
    )
    add_html_argument(parser)


class WarmUp:
    """Does, on a daemon thread, the work that follows a run while the guest runs.

    The session only waits on gdb then (in ``select``, without the GIL), so the
    diagnosis's imports and the reference snapshot — about a third of the run's Python
    time — happen on a core QEMU leaves idle instead of before QEMU starts or after the
    guest stops. When gdb answers, the main thread gets the GIL back within Python's
    switch interval, cut to :data:`SWITCH_INTERVAL` while this thread runs: with the
    default 5 ms, the vector run's dozen gdb round trips took 190 ms instead of 60 (an
    import-bound thread beside it, load 9), with 0.5 ms 70. A module the main thread
    needs meanwhile waits on its import lock (safe: lhvdbg's imports have no cycle,
    ``tests/unit/test_import_graph.py``); a step that fails here is done again, and
    fails, on demand as before.
    """

    def __init__(self, steps: Iterable[Callable[[], object]]) -> None:
        self.steps = list(steps)
        self._thread = threading.Thread(target=self._run, name="lhvdbg-warm-up", daemon=True)

    def _run(self) -> None:
        interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        try:
            for step in self.steps:
                step()
        except Exception:  # the main thread's own call reports it
            return
        finally:
            sys.setswitchinterval(interval)

    def start(self) -> WarmUp:
        """Begin (returns at once)."""
        self._thread.start()
        return self


def _after_the_run(args: argparse.Namespace, arch: str) -> list[Callable[[], object]]:
    """What the diagnosis and its output will need: their modules, heaviest first, and
    the reference snapshot when it is a shipped one."""
    modules = ["lhvdbg.commands._diagnosis", "lhvdbg.state.references"]
    if not args.json:
        modules.append("lhvdbg.ui.report")
    if args.html is not None:
        modules.append("lhvdbg.ui.html")
    steps: list[Callable[[], object]] = [partial(importlib.import_module, m) for m in modules]
    steps.append(partial(_load_shipped_reference, args.reference, arch))
    return steps


def _load_shipped_reference(name: str | None, arch: str) -> None:
    """Read the reference the diagnosis will weigh differences against (cached by
    :mod:`lhvdbg.state.references`), unless it is a file of the user's."""
    from lhvdbg.commands._diagnosis import default_reference
    from lhvdbg.state.references import REFERENCE_NAMES, load_reference

    chosen = name if name is not None else default_reference(arch)
    if chosen in REFERENCE_NAMES:
        load_reference(chosen)


def _print(ctx: Context, report: object, as_json: bool) -> None:
    from lhvdbg.diagnose.report import Report

    assert isinstance(report, Report)
    if as_json:
        ctx.print_json(report.to_json())
        return
    from lhvdbg.ui.report import render_report

    ctx.print(render_report(report))


@command(
    "break-on-df",
    "boot the kernel, stop when vector 8 fires, and diagnose why (PIC, IST, TSS, stack...)",
    configure=_configure,
    category="diagnosis",
    where={"cli"},
)
def run(args: argparse.Namespace, ctx: Context) -> int:
    """Launch, run to the kernel's entry, then to IDT[8]'s handler (or a triple fault, a
    requested reset, an exit, the timeout), diagnose."""
    from lhvdbg.commands._boot import run_to_entry
    from lhvdbg.machine.session import Session
    from lhvdbg.machine.trace import note_entry, with_pic_trace

    if args.timeout <= 0 or args.boot_timeout <= 0:
        raise UsageError("--timeout and --boot-timeout need a positive number of seconds")
    check_html_path(args.html)
    config = with_pic_trace(launch_config_from_args(args))
    watch = RunWatch(sys.stderr if ctx.stdout is sys.stdout else None)
    entered: bool | None = False
    with watch, Session(config) as session:
        WarmUp(_after_the_run(args, session.arch)).start()
        try:
            watch.phase = "booting (firmware and loader)"
            boot = run_to_entry(session, timeout=args.boot_timeout, poll=watch.poll)
            entered = boot.entered
            note_entry(session)
            if boot.stop is not None:
                stop, limit = boot.stop, args.boot_timeout
            else:
                watch.phase = f"kernel entered: waiting for vector {DF_VECTOR}"
                stop = session.run_to_vector(DF_VECTOR, timeout=args.timeout, poll=watch.poll)
                limit = args.timeout
        except RunInterrupted:
            stop, limit = session.interrupt(), None
        watch.phase = "collecting the evidence"
        from lhvdbg.commands._diagnosis import diagnose_session_with_evidence

        report, ev = diagnose_session_with_evidence(
            session, stop, reference=args.reference, limit=limit, kernel_entered=entered
        )
        session.close(reap=not ctx.ends_process)
    if watch.interrupted:
        report = replace(report, notes=(*report.notes, watch.note()))
    _print(ctx, report, args.json)
    if args.html is not None:
        from lhvdbg.ui.html import report_page

        page = report_page(report, snapshot=ev.snapshot, tables=ev.tables, reference=ev.reference)
        write_html(args.html, page)
    return EXIT_INTERRUPTED if watch.interrupted else 0


def _int_log_events(path: Path) -> tuple[ChainEvent, ...]:
    """The events of a ``-d int`` log file (bounded read); UsageError when it has none."""
    from lhvdbg.diagnose.intlog import parse_int_log
    from lhvdbg.files import INT_LOG, read_bytes

    events = tuple(parse_int_log(read_bytes(path, INT_LOG).decode("utf-8", "replace")))
    if not events:
        raise UsageError(f"{path}: no interrupt or exception in it (not a QEMU -d int log?)")
    return events


def _configure_diagnose(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reference",
        metavar="NAME|FILE",
        help="known-good snapshot (default: pebbles for i386, lhv-amd64 for amd64)",
    )
    parser.add_argument(
        "--int-log",
        type=Path,
        metavar="FILE",
        help="QEMU's -d int log of the run being looked at (a snapshot or your own QEMU, "
        "as in the gdb plugin): its events make the chain; a live session reads its own",
    )


@command(
    "diagnose",
    "diagnose the current state: the interrupt chain so far, the causes, the evidence",
    configure=_configure_diagnose,
    category="diagnosis",
    where={"shell", "scenario"},
)
def run_diagnose(args: argparse.Namespace, ctx: Context) -> int:
    """Diagnose where the shell's live session (or snapshot) is now."""
    from lhvdbg.commands._diagnosis import diagnose_session, diagnose_snapshot

    session = ctx.session
    if session is not None:  # a guest that exited is diagnosed from what was recorded
        from lhvdbg.machine.session import StopEvent

        stop = session.last_stop or StopEvent("interrupted", detail="session state")
        report = diagnose_session(session, stop, reference=args.reference)
        if args.int_log is not None:
            raise UsageError("diagnose --int-log: this session reads its own -d int log")
    else:
        target = ctx.require_target()
        events = _int_log_events(args.int_log) if args.int_log is not None else ()
        report = diagnose_snapshot(target.capture(), reference=args.reference, events=events)
    ctx.state["last_report"] = report
    _print(ctx, report, args.json)
    return 0
