"""The ``lhvdbg`` command line: argparse over the command registry.

Every error reaches the user as one line ``lhvdbg: ...`` and a non-zero exit code;
``--verbose`` adds the error's context (and the traceback of an internal error).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from lhvdbg import __version__
from lhvdbg.commands.registry import Context, Registry, load_all
from lhvdbg.errors import LhvdbgError

EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


def build_parser(registry: Registry) -> argparse.ArgumentParser:
    """The top-level parser with one sub-command per CLI command."""
    parser = argparse.ArgumentParser(
        prog="lhvdbg",
        description="A QEMU-GDB debugging workbench for bare-metal x86 kernels and hypervisors.",
    )
    parser.add_argument("--version", action="version", version=f"lhvdbg {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show error context and debug logs"
    )
    parser.add_argument("--no-color", action="store_true", help="plain text output")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in registry.offered_in("cli"):
        sub = subparsers.add_parser(
            cmd.name, help=cmd.summary, description=cmd.summary, aliases=list(cmd.aliases)
        )
        if cmd.configure is not None:
            cmd.configure(sub)
        sub.set_defaults(_command=cmd.name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    registry = load_all()
    parser = build_parser(registry)
    args = parser.parse_args(argv)
    if getattr(args, "_command", None) is None:
        parser.print_help()
        return 2
    if args.verbose:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")
    color = not args.no_color and sys.stdout.isatty() and "NO_COLOR" not in os.environ
    ctx = Context(stdout=sys.stdout, color=color)
    try:
        return registry.get(args._command).run(args, ctx)
    except LhvdbgError as error:
        print(f"lhvdbg: {error}", file=sys.stderr)
        if args.verbose and error.details():
            print(error.details(), file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("lhvdbg: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0
    except Exception as error:  # the last line of defence: never a traceback by default
        print(
            f"lhvdbg: internal error: {type(error).__name__}: {error} "
            "(run with --verbose for the traceback)",
            file=sys.stderr,
        )
        if args.verbose:
            import traceback

            traceback.print_exc()
        return EXIT_INTERNAL
