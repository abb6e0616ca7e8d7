"""Launch options shared by every command that starts or reads a machine.

``add_launch_arguments`` declares ``--kernel/--variant/--cdrom/--arch/--accel/--memory/
--append/--qemu/--qemu-arg/--symbols/--qemu-system/--no-debug-exit``;
``launch_config_from_args`` turns them into a
:class:`~lhvdbg.machine.session.LaunchConfig`. ``add_snapshot_argument`` adds
``--snapshot FILE`` (offline mode). ``open_target`` gives a command its ``Target``: the
context's one (shell), a snapshot file, or a fresh live session.

Importing this module starts nothing and imports no heavy package.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from lhvdbg.errors import UsageError

if TYPE_CHECKING:
    from lhvdbg.commands.registry import Context
    from lhvdbg.machine.session import LaunchConfig, Session
    from lhvdbg.state.target import Target


def add_launch_arguments(
    parser: argparse.ArgumentParser,
    *,
    default_variant: str | None = None,
    default_arch: str | None = None,
) -> None:
    """Add the launch options to ``parser`` (in an argument group "launch").

    ``--kernel PATH`` | ``--variant NAME`` | ``--cdrom PATH`` (mutually exclusive; with
    none, the firmware ``default_variant`` of ``--arch``), ``--arch amd64|i386``,
    ``--accel tcg|kvm|auto`` (default tcg), ``--memory MB``, ``--append TEXT``,
    ``--qemu PATH`` (the QEMU binary; default ``$LHVDBG_QEMU``, else on ``PATH``),
    ``--qemu-arg ARG`` (repeatable), ``--symbols ELF``, ``--qemu-system x86_64|i386``,
    ``--no-debug-exit``. The defaults are the session's (DEFAULT_VARIANT, DEFAULT_ARCH).
    """
    from lhvdbg.machine.launch import DEFAULT_ARCH, DEFAULT_VARIANT

    default_variant = default_variant or DEFAULT_VARIANT
    default_arch = default_arch or DEFAULT_ARCH
    group = parser.add_argument_group("launch")
    which = group.add_mutually_exclusive_group()
    which.add_argument(
        "--kernel", type=Path, metavar="PATH", help="any multiboot kernel ELF (32 or 64-bit)"
    )
    which.add_argument(
        "--variant",
        metavar="NAME",
        help=f"built firmware variant firmware/build/ARCH/lhv-NAME.elf "
        f"(default: {default_variant})",
    )
    which.add_argument("--cdrom", type=Path, metavar="PATH", help="boot an ISO image (GRUB)")
    group.add_argument(
        "--arch", choices=("amd64", "i386"), default=default_arch, help="firmware architecture"
    )
    group.add_argument(
        "--accel",
        choices=("tcg", "kvm", "auto"),
        default="tcg",
        help="accelerator (auto = kvm when /dev/kvm is usable; default tcg)",
    )
    group.add_argument("--memory", type=int, default=128, metavar="MB", help="guest RAM in MiB")
    group.add_argument("--append", default="", metavar="TEXT", help="kernel command line")
    group.add_argument(
        "--qemu",
        metavar="PATH",
        help="QEMU binary to run (default: $LHVDBG_QEMU, else qemu-system-x86_64 on PATH; "
        "an unpacked <root>/usr/bin/qemu-system-x86_64 gets -L <root>/usr/share/qemu)",
    )
    group.add_argument(
        "--qemu-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra QEMU argument (repeatable; --qemu-arg=-smp --qemu-arg=1)",
    )
    group.add_argument(
        "--symbols", type=Path, metavar="ELF", help="symbol file for gdb (default: the kernel)"
    )
    group.add_argument(
        "--qemu-system",
        choices=("x86_64", "i386"),
        default="x86_64",
        help="QEMU binary qemu-system-x86_64 (default) or qemu-system-i386",
    )
    group.add_argument(
        "--no-debug-exit", action="store_true", help="no isa-debug-exit device at port 0xf4"
    )
    parser.set_defaults(_default_variant=default_variant)


def add_snapshot_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--snapshot FILE``: work offline on a saved snapshot instead of launching."""
    parser.add_argument(
        "--snapshot", type=Path, metavar="FILE", help="work offline on a saved snapshot"
    )


def launch_config_from_args(args: argparse.Namespace) -> LaunchConfig:
    """The LaunchConfig the parsed launch options describe (UsageError if inconsistent;
    the kernel itself is checked when the session starts)."""
    from lhvdbg.machine.launch import DEFAULT_ARCH, DEFAULT_VARIANT, LaunchConfig

    kernel = getattr(args, "kernel", None)
    cdrom = getattr(args, "cdrom", None)
    variant = getattr(args, "variant", None)
    if kernel is None and cdrom is None and variant is None:
        variant = getattr(args, "_default_variant", DEFAULT_VARIANT)
    if cdrom is not None:  # QEMU reads it: check here what lhvdbg's own reads check
        from lhvdbg.files import CDROM, check_file

        check_file(cdrom, CDROM)
    memory = int(getattr(args, "memory", 128))
    if memory < 2:
        raise UsageError(f"--memory {memory}: give the guest RAM in MiB (at least 2)")
    return LaunchConfig(
        kernel=kernel,
        cdrom=cdrom,
        arch=getattr(args, "arch", DEFAULT_ARCH),
        variant=variant,
        accel=getattr(args, "accel", "tcg"),
        memory_mb=memory,
        append=getattr(args, "append", "") or "",
        extra_args=tuple(getattr(args, "qemu_arg", None) or ()),
        debug_exit=not getattr(args, "no_debug_exit", False),
        symbols=getattr(args, "symbols", None),
        qemu_system=getattr(args, "qemu_system", "x86_64"),
        qemu=getattr(args, "qemu", None),
    )


@contextmanager
def open_target(args: argparse.Namespace, ctx: Context) -> Iterator[tuple[Target, Session | None]]:
    """The target a command works on, as ``(target, session_or_None)``:

    the context's target when one is set (shell/scenarios, with ``ctx.session``);
    else a ``SnapshotTarget`` when ``args.snapshot`` is given; else a new live Session from
    the launch options, closed when the block ends.
    """
    if ctx.target is not None:
        yield ctx.target, ctx.session
        return
    snapshot_path = getattr(args, "snapshot", None)
    if snapshot_path is not None:
        from lhvdbg.state.snapshot import load_snapshot
        from lhvdbg.state.target import SnapshotTarget

        yield SnapshotTarget(load_snapshot(snapshot_path)), None
        return
    from lhvdbg.machine.session import Session

    with Session(launch_config_from_args(args)) as session:
        yield session.target, session
