"""Record, replay, step back: ``lhvdbg record FILE`` (CLI), and in a replay shell
(``lhvdbg shell --replay FILE``) ``reverse-stepi``, ``reverse-continue`` and
``last-write TARGET`` (lhvdbg/machine/replay.py says what QEMU does and does not do)."""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from lhvdbg.commands.options import add_launch_arguments, launch_config_from_args
from lhvdbg.commands.registry import Context, command
from lhvdbg.errors import UsageError

if TYPE_CHECKING:
    from lhvdbg.machine.session import Session

_live = partial(command, where={"shell", "scenario"}, needs_live=True, category="run")


def _session(ctx: Context) -> Session:
    if ctx.session is None:
        raise UsageError("this needs a replay: lhvdbg shell --replay FILE")
    return ctx.session


def _configure_record(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="the recording to write")
    add_launch_arguments(parser)
    parser.add_argument(
        "--timeout", type=float, default=10.0, metavar="SECONDS", help="stop recording after"
    )


@command(
    "record",
    "run a kernel under QEMU's deterministic record/replay into FILE (replay it with "
    "lhvdbg shell --replay FILE)",
    configure=_configure_record,
    category="machine",
    where={"cli"},
    json=None,
)
def record_command(args: argparse.Namespace, ctx: Context) -> int:
    from lhvdbg.machine.replay import Recording, record_config
    from lhvdbg.machine.session import Session

    if args.timeout <= 0:
        raise UsageError(f"--timeout {args.timeout:g}: give a positive number of seconds")
    config = record_config(launch_config_from_args(args), args.file)
    with Session(config) as session:
        event = session.cont(timeout=args.timeout)
    rec = Recording(args.file)
    size = rec.log.stat().st_size if rec.log.exists() else 0
    ctx.print(
        f"recorded {config.describe()} into {rec.log} ({size} bytes; snapshot in "
        f"{rec.image.name}, launch in {rec.meta.name}); ended: {event.detail or event.reason}\n"
        f"replay it: lhvdbg shell --replay {rec.log}"
    )
    return 0


def _configure_count(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("count", nargs="?", type=int, default=1, help="instructions")


@_live("reverse-stepi", "step N instructions backwards in a replay", configure=_configure_count)
def reverse_stepi_command(args: argparse.Namespace, ctx: Context) -> int:
    from lhvdbg.commands.control import after_stop
    from lhvdbg.machine.replay import reverse_stepi

    if args.count < 1:
        raise UsageError(f"reverse-stepi: count must be at least 1, got {args.count}")
    after_stop(ctx, reverse_stepi(_session(ctx), args.count), as_json=args.json)
    return 0


def _configure_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, default=30.0, metavar="S")


@_live(
    "reverse-continue",
    "run backwards to the previous breakpoint hit (or the recording's start) in a replay",
    configure=_configure_timeout,
)
def reverse_continue_command(args: argparse.Namespace, ctx: Context) -> int:
    from lhvdbg.commands.control import after_stop
    from lhvdbg.machine.replay import reverse_continue

    after_stop(ctx, reverse_continue(_session(ctx), timeout=args.timeout), as_json=args.json)
    return 0


def _configure_last_write(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target", metavar="TARGET", help="ADDRESS | SYMBOL[+OFF] | gdt[N] | idt[N] | tss.FIELD"
    )
    _configure_timeout(parser)


@_live(
    "last-write",
    "in a replay: go to the store that last wrote TARGET (address, gdt[N], idt[N], "
    "tss.FIELD); show it with the old and new values",
    configure=_configure_last_write,
)
def last_write_command(args: argparse.Namespace, ctx: Context) -> int:
    from lhvdbg.machine.replay import last_write, resolve_target

    session = _session(ctx)
    target = resolve_target(session, args.target)
    found = last_write(session, target, timeout=args.timeout)
    if args.json:
        ctx.print_json(found.to_dict())
        return 0
    where = f"{target.label} ({target.size} bytes at {target.address:#x})"
    if not found.found:
        ctx.print(f"last-write {where}: {found.detail}")
        return 0
    ctx.print(
        f"last-write {where}: {found.symbol} ({found.rip or 0:#x}): {found.instruction}\n"
        f"  old {found.old.hex(' ')}\n  new {found.new.hex(' ')}\n"
        f"  stopped before the store; {found.detail}"
    )
    return 0
