"""Launch options shared by every command that starts or reads a machine.

``add_launch_arguments`` declares ``--kernel/--variant/--arch/--cdrom/--accel/--memory/
--append/--qemu-arg/--no-debug-exit``; ``launch_config_from_args`` turns them into a
:class:`~lhvdbg.machine.session.LaunchConfig`. ``add_snapshot_argument`` adds
``--snapshot FILE`` (offline mode). ``open_target`` gives a command its ``Target``: the
context's one (shell), a snapshot file, or a fresh live session.

This module imports no heavy package at import time (``lhvdbg --help`` stays fast).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from lhvdbg.machine.session import DEFAULT_ARCH, DEFAULT_VARIANT, LaunchConfig

if TYPE_CHECKING:
    from lhvdbg.commands.registry import Context
    from lhvdbg.machine.session import Session
    from lhvdbg.state.target import Target


def add_launch_arguments(
    parser: argparse.ArgumentParser,
    *,
    default_variant: str = DEFAULT_VARIANT,
    default_arch: str = DEFAULT_ARCH,
) -> None:
    """Add the launch options to ``parser`` (in an argument group "launch").

    ``--kernel PATH`` | ``--variant NAME`` | ``--cdrom PATH`` (mutually exclusive; with
    none, the firmware ``default_variant`` of ``--arch``), ``--arch amd64|i386``,
    ``--accel tcg|kvm|auto`` (default tcg), ``--memory MB``, ``--append TEXT``,
    ``--qemu-arg ARG`` (repeatable), ``--no-debug-exit``.
    """
    raise NotImplementedError


def add_snapshot_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--snapshot FILE``: work offline on a saved snapshot instead of launching."""
    raise NotImplementedError


def launch_config_from_args(args: argparse.Namespace) -> LaunchConfig:
    """The LaunchConfig the parsed launch options describe (UsageError if inconsistent;
    the kernel is checked when the session starts)."""
    raise NotImplementedError


@contextmanager
def open_target(args: argparse.Namespace, ctx: Context) -> Iterator[tuple[Target, Session | None]]:
    """The target a command works on, as ``(target, session_or_None)``:

    the context's target when one is set (shell/scenarios, ``ctx.session`` alongside);
    else a ``SnapshotTarget`` when ``args.snapshot`` is given; else a new live Session from
    the launch options, closed when the block ends.
    """
    raise NotImplementedError
    yield  # pragma: no cover
