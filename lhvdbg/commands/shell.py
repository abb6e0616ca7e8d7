"""``lhvdbg shell``: the interactive debugger on a live machine or, read-only, a snapshot.

Starts the session (QEMU paused at reset, gdb attached) and hands the registry and a
context to :func:`lhvdbg.ui.shell.run_shell`; the session is closed when the shell ends.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lhvdbg.commands.options import (
    add_launch_arguments,
    add_snapshot_argument,
    launch_config_from_args,
)
from lhvdbg.commands.registry import Context, command


def _configure(parser: argparse.ArgumentParser) -> None:
    add_launch_arguments(parser)
    add_snapshot_argument(parser)
    parser.add_argument(
        "-x",
        "--execute",
        action="append",
        default=[],
        metavar="CMD",
        help="run CMD first, as if typed (repeatable)",
    )
    parser.add_argument(
        "--replay",
        type=Path,
        metavar="FILE",
        help="open a recording (lhvdbg record FILE): reverse-stepi, reverse-continue, last-write",
    )
    parser.add_argument(
        "--history",
        type=Path,
        metavar="FILE",
        help="history file (default $XDG_STATE_HOME/lhvdbg/history)",
    )


@command(
    "shell",
    "interactive shell: decoded tables, breakpoints, stepping, diagnosis (live or snapshot)",
    configure=_configure,
    category="shell",
    where={"cli"},
    json=None,
)
def shell_command(args: argparse.Namespace, ctx: Context) -> int:
    from lhvdbg.commands.control import SHELL_PHRASES
    from lhvdbg.commands.registry import REGISTRY
    from lhvdbg.ui.shell import run_shell

    def shell(banner: str) -> int:
        return run_shell(
            REGISTRY,
            ctx,
            banner=banner,
            history=args.history,
            phrases=SHELL_PHRASES,
            first=args.execute,
        )

    if args.snapshot is not None:
        from lhvdbg.state.snapshot import load_snapshot
        from lhvdbg.state.target import SnapshotTarget

        snapshot = load_snapshot(args.snapshot)
        ctx.target = SnapshotTarget(snapshot)
        ctx.state["snapshot"] = snapshot
        return shell(
            f"lhvdbg shell on snapshot {args.snapshot} ({snapshot.arch}, {snapshot.cpu.mode} "
            f"mode, {snapshot.provenance.stop_reason or 'stop reason unknown'}); read-only. "
            "Type help."
        )
    from lhvdbg.machine.session import Session

    config = launch_config_from_args(args)
    if args.replay is not None:
        from lhvdbg.machine.replay import replay_config

        config = replay_config(args.replay, qemu=args.qemu)
    with Session(config) as session:
        ctx.target = session.target
        ctx.session = session
        return shell(
            f"lhvdbg shell: {config.describe()}, QEMU {session.qemu_version} ({session.accel}); "
            "the CPU waits at reset. Type help; Ctrl-C stops the guest, Ctrl-D quits."
        )
