"""The ``lhvdbg`` command line: argparse over the command registry.

Every error reaches the user as one line ``lhvdbg: ...`` and a non-zero exit code;
``--verbose`` adds the error's context (and the traceback of an internal error). Ctrl-C
and SIGTERM, at any moment after this module starts, end in one line and exit 130/143
(:mod:`lhvdbg.signals`).

Start-up stays light: ``--version`` imports nothing, ``--help`` reads the command index
(``commands/index.py``) and ``lhvdbg CMD`` imports only CMD's module.
"""

from __future__ import annotations

import os
import sys

from lhvdbg import __version__
from lhvdbg.signals import EXIT_INTERRUPTED, EXIT_TERMINATED, Terminated, install, restore


def _started_as_program() -> bool:
    """Whether this process is the ``lhvdbg`` program (its console script, or
    ``python -m lhvdbg``), not a process that imports the CLI (a test)."""
    started = getattr(sys.modules.get("__main__"), "__file__", None) or ""
    return started.endswith(("/lhvdbg", "lhvdbg/__main__.py"))


# As the program, SIGTERM is handled from the moment this entry module loads (the console
# script and ``python -m lhvdbg`` import it first), not only once main() runs.
if _started_as_program():
    install()

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from lhvdbg.commands.entry import IndexEntry
    from lhvdbg.commands.registry import Command

EXIT_INTERNAL = 70
DESCRIPTION = "A QEMU-GDB debugging workbench for bare-metal x86 kernels and hypervisors."
# The global options: flags and help, declared once for the parser and the quick help.
OPTIONS = (
    (("-h", "--help"), "show this help and exit"),
    (("--version",), "show the version and exit"),
    (("-v", "--verbose"), "show error context and debug logs"),
    (("--no-color",), "plain text output"),
)
# The flags that may come before the command's name (not -h/--version: they end the run).
_GLOBAL_FLAGS = tuple(flag for flags, _ in OPTIONS[2:] for flag in flags)


def build_parser(
    entries: Sequence[IndexEntry], loaded: Sequence[Command] = ()
) -> argparse.ArgumentParser:
    """The top-level parser: one sub-command per CLI command of the index; the commands in
    ``loaded`` get their full arguments (the others are only listed)."""
    from lhvdbg.commands.parsing import ArgumentParser

    parser = ArgumentParser(prog="lhvdbg", description=DESCRIPTION, add_help=False)
    for flags, text in OPTIONS:
        if "--help" in flags:
            parser.add_argument(*flags, action="help", help=text)
        elif "--version" in flags:
            parser.add_argument(*flags, action="version", version=f"lhvdbg {__version__}")
        else:
            parser.add_argument(*flags, action="store_true", help=text)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    full = {cmd.name: cmd for cmd in loaded}
    for entry in sorted(entries, key=lambda e: (e.category, e.name)):
        if "cli" not in entry.where:
            continue
        sub = subparsers.add_parser(
            entry.name, help=entry.summary, description=entry.summary, aliases=entry.aliases
        )
        cmd = full.get(entry.name)
        if cmd is not None:
            cmd.configure_parser(sub)
        sub.set_defaults(_command=entry.name)
    return parser


def help_width() -> int:
    """The width help is wrapped at: ``$COLUMNS``, else the terminal's, else 120 (as
    piped output elsewhere)."""
    try:
        return int(os.environ.get("COLUMNS", "0")) or os.get_terminal_size(1).columns
    except (ValueError, OSError):
        return 120


def _item(name: str, text: str, column: int, width: int) -> list[str]:
    """``    NAME  text`` with ``text`` wrapped between words under itself."""
    lines, line = [], f"    {name:<{column}} "
    for word in text.split():
        if len(line) + 1 + len(word) > width and line.strip() != name:
            lines.append(line)
            line = " " * (column + 5)
        line += " " + word
    return [*lines, line]


def quick_help(entries: Sequence[IndexEntry], width: int | None = None) -> str:
    """The top-level help, from the index alone (argparse is not even imported): the
    global options and every CLI command with its summary, by category, wrapped at
    ``width`` (:func:`help_width` by default)."""
    width = width or help_width()
    commands = sorted((e for e in entries if "cli" in e.where), key=lambda e: (e.category, e.name))
    options = [(", ".join(flags), text) for flags, text in OPTIONS]
    column = max(len(name) for name in [*(e.name for e in commands), *(o for o, _ in options)])
    usage = " ".join(f"[{flags[0]}]" for flags, _ in OPTIONS)
    lines = [f"usage: lhvdbg {usage} COMMAND ...", "", DESCRIPTION, "", "commands:"]
    category = None
    for entry in commands:
        if entry.category != category:
            category = entry.category
            lines.append(f"  {category}:")
        lines += _item(entry.name, entry.summary, column, width)
    lines += ["", "options:"]
    for flags, text in options:
        lines += _item(flags, text, column, width)
    lines += ["", "lhvdbg COMMAND --help shows the options of a command."]
    return "\n".join(lines) + "\n"


def _command_word(argv: Sequence[str]) -> str | None:
    """The first word after the global flags: the command's name (or None)."""
    for word in argv:
        if word not in _GLOBAL_FLAGS:
            return None if word.startswith("-") else word
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit code. As the program (``argv`` None), the
    process ends here once its output is flushed (:func:`_exit_now`)."""
    install()
    try:
        as_program = argv is None and _started_as_program()  # it ends with _exit_now
        status = _main(list(sys.argv[1:] if argv is None else argv), as_program)
    except KeyboardInterrupt:
        status = _ended("interrupted", EXIT_INTERRUPTED)
    except Terminated:
        status = _ended("terminated", EXIT_TERMINATED)
    finally:
        if argv is not None:  # called in-process (tests): give SIGTERM back; as the
            restore()  # program, keep it handled until the very end
    if argv is None and _started_as_program():
        _exit_now(status)
    return status


def _exit_now(status: int) -> None:
    """End the process with ``status`` once stdout and stderr are flushed, skipping the
    interpreter's tear-down: freeing every module and object of a run that started QEMU
    and gdb took 0.1-0.3 s on the 2-core machine (measured with
    ``bench/bench_break_on_df.py --phases``), after the last byte of output. Safe here:
    every child process and file the command opened is closed by then (sessions are
    context managers), lhvdbg registers no ``atexit`` work, and its one log handler
    writes to stderr."""
    import os
    from contextlib import suppress

    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):  # a closed pipe: nothing more can be said
            stream.flush()
    os._exit(status)


def _ended(how: str, status: int) -> int:
    """The one line of a signal's ending (none when stderr is gone)."""
    from contextlib import suppress  # only now: contextlib is not needed on the fast path

    with suppress(OSError, ValueError):
        print(f"lhvdbg: {how}", file=sys.stderr)
    return status


def _main(argv: list[str], as_program: bool = False) -> int:
    if argv == ["--version"]:
        print(f"lhvdbg {__version__}")
        return 0
    if argv in ([], ["-h"], ["--help"]):
        from lhvdbg.commands.index import COMMANDS

        sys.stdout.write(quick_help(COMMANDS))
        return 0 if argv else 2
    verbose = any(word in ("-v", "--verbose") for word in argv)
    from lhvdbg.errors import LhvdbgError

    try:
        from lhvdbg.commands.index import COMMANDS

        entries: Sequence[IndexEntry] = COMMANDS
        name = _command_word(argv)
        names = {n for e in entries if "cli" in e.where for n in (e.name, *e.aliases)}
        loaded: list[Command] = []
        if name in names:
            from lhvdbg.commands.registry import load_command

            loaded = [load_command(name, COMMANDS)]
            # only this command's sub-parser: argparse builds the others' for nothing
            entries = [e for e in entries if loaded[0].name in (e.name, *e.aliases)]
        elif name is not None:  # not in the index (stale): ask every module
            from lhvdbg.commands.registry import index_entries, load_all

            registry = load_all()
            entries = index_entries(registry)
            loaded = [registry.get(name)] if name in registry else []
        parser = build_parser(entries, loaded)
        args = parser.parse_args(argv)
        if getattr(args, "_command", None) is None:
            sys.stdout.write(quick_help(entries))
            return 2
        if args.verbose:
            import logging

            logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")
        import os

        color = not args.no_color and sys.stdout.isatty() and "NO_COLOR" not in os.environ
        from lhvdbg.commands.registry import Context

        ctx = Context(stdout=sys.stdout, color=color, ends_process=as_program)
        return loaded[0].run(args, ctx)
    except LhvdbgError as error:
        print(f"lhvdbg: {error}", file=sys.stderr)
        if verbose and error.details():
            print(error.details(), file=sys.stderr)
        return error.exit_code
    except BrokenPipeError:
        return 0
    except Exception as error:  # the last line of defence: never a traceback by default
        print(
            f"lhvdbg: internal error: {type(error).__name__}: {error} "
            "(run with --verbose for the traceback)",
            file=sys.stderr,
        )
        if verbose:
            import traceback

            traceback.print_exc()
        return EXIT_INTERNAL
