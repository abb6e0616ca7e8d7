"""One registry of commands, shared by the CLI, the shell and scenarios.

A command is a thin function ``run(args, ctx) -> int``: read state, call pure code,
render. It declares its arguments once (an argparse configurator) and where it is offered
(``cli``, ``shell``, ``scenario``). Command modules live in ``lhvdbg.commands`` and are
discovered by :func:`load_all`; they must import heavy modules (rich, pygdbmi, qemu.qmp)
inside ``run``, not at import time, so ``lhvdbg --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from lhvdbg.commands.entry import IndexEntry
from lhvdbg.commands.parsing import ArgumentParser
from lhvdbg.errors import UsageError

if TYPE_CHECKING:
    from lhvdbg.machine.session import Session
    from lhvdbg.state.target import Target

RunFunction = Callable[[argparse.Namespace, "Context"], int]
Configure = Callable[[argparse.ArgumentParser], None]

WHERE_ALL = frozenset({"cli", "shell", "scenario"})
JSON_HELP = "print the result as JSON"


@dataclass(frozen=True)
class Command:
    """A registered command."""

    name: str
    summary: str
    run: RunFunction
    configure: Configure | None = None
    category: str = "general"
    where: frozenset[str] = WHERE_ALL
    aliases: tuple[str, ...] = ()
    needs_live: bool = False  # in the shell/scenarios: needs a live session, not a snapshot
    json: str | None = JSON_HELP  # the --json option's help; None: the command has none

    def parser(self, prog: str | None = None) -> argparse.ArgumentParser:
        """A stand-alone parser for this command (used by the shell and scenarios)."""
        parser = ShellArgumentParser(prog=prog or self.name, description=self.summary)
        self.configure_parser(parser)
        return parser

    def configure_parser(self, parser: argparse.ArgumentParser) -> None:
        """The command's own options, then ``--json`` (the one place it is added)."""
        if self.configure is not None:
            self.configure(parser)
        if self.json is not None:
            add_json_option(parser, self.json)


def add_json_option(parser: argparse.ArgumentParser, help_text: str = "") -> None:
    """``--json``: print the result as data (one JSON document) instead of text. Commands
    get it from the registry; only a command's own sub-commands call this themselves."""
    parser.add_argument("--json", action="store_true", help=help_text or JSON_HELP)


class ShellArgumentParser(ArgumentParser):
    """The parser of a command in the shell and scenarios: ``--help`` does not end the
    process."""

    def exit(self, status: int = 0, message: str | None = None) -> Any:
        if message:
            self._print_message(message, sys.stderr)
        raise HelpShown(status)


class HelpShown(Exception):
    """Raised by ``ShellArgumentParser.exit`` (``--help`` inside the shell)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@dataclass
class Context:
    """What a command runs with: where to write, and (in the shell/scenarios) the target.

    The CLI gives a fresh context per run; the shell keeps one for the session, with
    ``target`` set to the live or snapshot target and ``session`` to the live session.
    ``state`` is a scratch dict the shell and scenarios use to share results (last report,
    last snapshot) between commands.
    """

    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    color: bool = True
    width: int | None = None
    target: Target | None = None
    session: Session | None = None
    state: dict[str, Any] = field(default_factory=dict)
    result: object = None  # the value the last command gave as data (``print_json``)
    #: The process ends when the command returns (the ``lhvdbg`` program): a session is
    #: closed without waiting for the kernel to tear QEMU and gdb down (10-15 ms).
    ends_process: bool = False

    def print_json(self, data: object) -> None:
        """Give ``data`` as the command's result (kept in ``result``, which scenarios read
        as data) and write it as indented JSON (integers stay integers)."""
        import json

        self.result = data
        self.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")

    def print(self, *renderables: object, soft_wrap: bool = False) -> None:
        """Render strings or rich renderables through the rendering layer.

        ``soft_wrap``: lines are neither wrapped nor cut at the width (log lines).
        """
        from lhvdbg.ui.console import make_console

        console = make_console(self.stdout, color=self.color, width=self.width)
        console.print(*renderables, soft_wrap=soft_wrap)

    def require_target(self) -> Target:
        """The current target, or a UsageError saying how to get one."""
        if self.target is None:
            raise UsageError("no target: give launch options or --snapshot FILE")
        return self.target


class Registry:
    """Name → Command, with aliases.

    ``loader`` (the global registry's: :func:`load_all`) completes the registry the first
    time a question needs every command — a name not registered yet, a listing — so a
    process that imported one command module (the CLI does) still finds the others when
    that command asks (the shell, ``until-df`` running ``diagnose``).
    """

    def __init__(self, loader: Callable[[], object] | None = None) -> None:
        self._commands: dict[str, Command] = {}
        self._aliases: dict[str, str] = {}
        self._loader = loader

    def _complete(self) -> None:
        loader, self._loader = self._loader, None
        if loader is not None:
            loader()

    def add(self, cmd: Command) -> Command:
        """Register ``cmd``; names and aliases must be unique."""
        for name in (cmd.name, *cmd.aliases):
            if name in self._commands or name in self._aliases:
                raise ValueError(f"command name registered twice: {name}")
        self._commands[cmd.name] = cmd
        for alias in cmd.aliases:
            self._aliases[alias] = cmd.name
        return cmd

    def get(self, name: str) -> Command:
        """The command called ``name`` (or aliased so), or UsageError."""
        if name not in self._commands and name not in self._aliases:
            self._complete()
        key = self._aliases.get(name, name)
        try:
            return self._commands[key]
        except KeyError:
            raise UsageError(f"unknown command: {name}") from None

    def __contains__(self, name: object) -> bool:
        if name in self._commands or name in self._aliases:
            return True
        self._complete()
        return name in self._commands or name in self._aliases

    def __iter__(self) -> Iterator[Command]:
        self._complete()
        return iter(sorted(self._commands.values(), key=lambda c: (c.category, c.name)))

    def offered_in(self, where: str) -> list[Command]:
        """Commands offered in ``cli``, ``shell`` or ``scenario``."""
        return [c for c in self if where in c.where]


REGISTRY = Registry(loader=lambda: load_all())


def command(
    name: str,
    summary: str,
    *,
    configure: Configure | None = None,
    category: str = "general",
    where: frozenset[str] | set[str] | tuple[str, ...] = WHERE_ALL,
    aliases: tuple[str, ...] = (),
    needs_live: bool = False,
    json: str | None = JSON_HELP,
) -> Callable[[RunFunction], RunFunction]:
    """Decorator: register ``run(args, ctx) -> int`` as a command; ``json`` is its
    ``--json`` option's help (None: no ``--json``)."""

    def register(run: RunFunction) -> RunFunction:
        REGISTRY.add(
            Command(
                name=name,
                summary=summary,
                run=run,
                configure=configure,
                category=category,
                where=frozenset(where),
                aliases=aliases,
                needs_live=needs_live,
                json=json,
            )
        )
        return run

    return register


_SKIP = {"registry", "options", "index", "parsing", "entry"}


def load_all() -> Registry:
    """Import every command module in ``lhvdbg.commands`` once; return the registry."""
    import pkgutil

    import lhvdbg.commands as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.name not in _SKIP and not info.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{info.name}")
    return REGISTRY


def index_entries(registry: Registry) -> list[IndexEntry]:
    """The index rows of every command in ``registry`` (name order)."""
    return [
        IndexEntry(
            name=cmd.name,
            module=cmd.run.__module__,
            summary=cmd.summary,
            category=cmd.category,
            aliases=cmd.aliases,
            where=tuple(sorted(cmd.where)),
        )
        for cmd in sorted(registry, key=lambda c: c.name)
    ]


def index_text(registry: Registry) -> str:
    """The source of ``lhvdbg/commands/index.py`` for ``registry``."""
    lines = [
        "# ruff: noqa: E501",
        '"""Generated from the command registry: which module defines each command, so',
        "``lhvdbg --help`` and ``lhvdbg CMD`` import one module, not all of them.",
        "",
        "Regenerate after adding or renaming a command (a unit test compares it with the",
        "registry)::",
        "",
        "    .venv/bin/python -c 'from lhvdbg.commands.registry import write_index; write_index()'",
        '"""',
        "",
        "from lhvdbg.commands.entry import IndexEntry",
        "",
        "COMMANDS = (",
    ]
    for entry in index_entries(registry):
        lines.append(f"    {entry!r},")
    lines.append(")")
    return "\n".join(lines) + "\n"


def write_index() -> None:
    """Rewrite ``lhvdbg/commands/index.py`` from the loaded registry."""
    from pathlib import Path

    import lhvdbg.commands as package

    (Path(package.__path__[0]) / "index.py").write_text(index_text(load_all()))


def load_command(name: str, entries: Sequence[IndexEntry]) -> Command:
    """The command ``name`` (or an alias), importing only the module the index names."""
    for entry in entries:
        if name == entry.name or name in entry.aliases:
            importlib.import_module(entry.module)
            return REGISTRY.get(entry.name)
    return load_all().get(name)
