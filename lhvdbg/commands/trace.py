"""``lhvdbg trace``: the history of what the kernel programmed, from its entry on.

Port writes to the PICs, the PIT, the keyboard controller, 0xCF9 and the debug-exit port
(with RIP and symbol), local APIC and I/O APIC register writes, ``lgdt``/``lidt``/``ltr``,
moves to CR0/CR3/CR4, ``wrmsr``, ``sti``/``cli``, and the interrupts of the ``-d int``
log, in order, each decoded by its meaning. ``--from-reset`` adds what the firmware (the
BIOS) did before the kernel's entry, marked as such. TCG only.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from lhvdbg.commands._html import add_html_argument, check_html_path, write_html
from lhvdbg.commands.options import add_launch_arguments, launch_config_from_args
from lhvdbg.commands.registry import Context, command

if TYPE_CHECKING:
    from lhvdbg.machine.launch import LaunchConfig
    from lhvdbg.state.history import History

DEFAULT_TIMEOUT = 10.0


def _configure(parser: argparse.ArgumentParser) -> None:
    add_launch_arguments(parser)
    parser.add_argument(
        "--from-reset",
        action="store_true",
        help="also show what the firmware did before the kernel's entry (marked firmware)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"stop recording after this long (default {DEFAULT_TIMEOUT:g})",
    )
    add_html_argument(parser)


def record(config: LaunchConfig, *, timeout: float, from_reset: bool = False) -> History:
    """Run a new machine for ``config`` and return its history."""
    from lhvdbg.machine.session import Session
    from lhvdbg.machine.trace import record_history, with_trace_events

    with Session(with_trace_events(config)) as session:
        return record_history(session, timeout=timeout, from_reset=from_reset)


@command(
    "trace",
    "record what the kernel programmed (PIC, PIT, LAPIC, GDT/IDT/TR, CRs) and the "
    "interrupts that followed, decoded",
    configure=_configure,
    category="diagnosis",
    json="a JSON list of {seq, kind, port|address|insn, value, rip, symbol, decoded}",
)
def run(args: argparse.Namespace, ctx: Context) -> int:
    """Record the history on a new machine and render it."""
    from lhvdbg.errors import UsageError

    if args.timeout <= 0:
        raise UsageError(f"--timeout {args.timeout:g}: give a positive number of seconds")
    check_html_path(args.html)
    config = launch_config_from_args(args)
    history = record(config, timeout=args.timeout, from_reset=args.from_reset)
    if args.html is not None:
        from lhvdbg.ui.html import trace_page

        write_html(args.html, trace_page(history, accel=config.resolved_accel()))
    if args.json:
        ctx.print_json([e.to_dict() for e in history.events])
        return 0
    from lhvdbg.ui.history import render_history

    ctx.print(render_history(history))
    return 0
