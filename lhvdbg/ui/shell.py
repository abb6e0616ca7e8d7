"""The interactive shell: a prompt_toolkit REPL over the command registry.

The ``shell`` command hands this module the registry (or any object with the same
``get``/``offered_in``/``__contains__``) and a :class:`Context`-like object that carries
the target and session; this module never imports ``lhvdbg.commands``. Each line is split
like a shell command line (``x/16xb ADDR`` is the command ``x`` with ``/16xb`` as its first
argument) and run through the command's own argument parser.

Errors inside a command print one line and return to the prompt. Ctrl-C while a command
runs interrupts the guest (through ``ctx.session.interrupt()``), not the shell; Ctrl-C at
the prompt clears the line; Ctrl-D or ``quit`` leaves. History persists in
``$XDG_STATE_HOME/lhvdbg/history`` (default ``~/.local/state/lhvdbg/history``).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol, TextIO

from lhvdbg.errors import LhvdbgError, MachineError

PROMPT = "lhvdbg> "
BUILTINS = {"help": "list commands, or show the help of one (help CMD)", "quit": "leave"}
QUIT_WORDS = ("quit", "exit", "q")
# Lines Enter does not run again (gdb repeats stepping and examining, not these).
NOT_REPEATED = frozenset({"reset", "save", "snapshot", "set", "delete", "d", "quit", "exit", "q"})


class ShellCommand(Protocol):
    """What the shell needs of a registered command."""

    @property
    def name(self) -> str: ...

    @property
    def summary(self) -> str: ...

    @property
    def category(self) -> str: ...

    @property
    def aliases(self) -> tuple[str, ...]: ...

    @property
    def needs_live(self) -> bool: ...

    def parser(self, prog: str | None = None) -> argparse.ArgumentParser: ...

    def run(self, args: argparse.Namespace, ctx: Any, /) -> int: ...


class CommandTable(Protocol):
    """What the shell needs of the registry."""

    def get(self, name: str) -> ShellCommand: ...

    def offered_in(self, where: str) -> list[Any]: ...

    def __contains__(self, name: object) -> bool: ...


def history_path() -> Path:
    """``$XDG_STATE_HOME/lhvdbg/history``, or ``~/.local/state/lhvdbg/history``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "lhvdbg" / "history"


def split_line(line: str) -> list[str]:
    """Words of a command line; ``x/FMT`` becomes ``x`` and ``/FMT``. UsageError-free:
    a quoting error raises ValueError with shlex's message."""
    words = shlex.split(line, comments=True)
    if words and "/" in words[0] and not words[0].startswith(("/", ".", "~")):
        name, _, fmt = words[0].partition("/")
        words[0:1] = [name, "/" + fmt]
    return words


class Shell:
    """One shell on one context; :meth:`execute` runs one line (tests call it directly)."""

    def __init__(
        self,
        registry: CommandTable,
        ctx: Any,
        *,
        out: TextIO | None = None,
        err: TextIO | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        phrases: Mapping[tuple[str, str], str] | None = None,
    ) -> None:
        self.registry = registry
        self.ctx = ctx
        self.phrases = dict(phrases or {})
        self.out = out or ctx.stdout
        self.err = err or sys.stderr
        self.on_error = on_error
        self.done = False
        self.last_line = ""

    # --- commands -------------------------------------------------------------------

    def commands(self) -> list[Any]:
        """Commands offered in the shell, sorted by category then name."""
        return list(self.registry.offered_in("shell"))

    def names(self) -> list[str]:
        """Every word that starts a command: names, aliases, builtins."""
        words = set(BUILTINS) | {"exit"} | {first for first, _ in self.phrases}
        for cmd in self.commands():
            words.add(cmd.name)
            words.update(cmd.aliases)
        return sorted(words)

    def _offered(self, name: str) -> bool:
        return name in self.registry and "shell" in getattr(
            self.registry.get(name), "where", ("shell",)
        )

    def execute_or_repeat(self, line: str) -> int:
        """As gdb at its prompt: an empty line runs the last non-empty line again (or what
        the command left in ``ctx.state["repeat"]``: ``x`` continues where it stopped)."""
        state = getattr(self.ctx, "state", None)
        if line.strip():
            self.last_line = line
            if isinstance(state, dict):
                state.pop("repeat", None)
            status = self.execute(line)
        elif self.last_line and self.last_line.split()[0] not in NOT_REPEATED:
            status = self.execute(self.last_line)
        else:
            return 0
        # a command may say how Enter goes on (gdb: `x` continues after what it showed)
        if isinstance(state, dict) and state.get("repeat"):
            self.last_line = str(state.pop("repeat"))
        return status

    def execute(self, line: str) -> int:
        """Run one line; return the command's exit status (0 for an empty line)."""
        try:
            words = split_line(line)
        except ValueError as exc:
            return self._fail(f"cannot parse the line: {exc}")
        if not words:
            return 0
        if tuple(words[:2]) in self.phrases:
            words[0:2] = [self.phrases[(words[0], words[1])]]
        elif any(words[0] == first for first, _ in self.phrases) and not self._offered(words[0]):
            options = " or ".join(f"{a} {b}" for a, b in self.phrases if a == words[0])
            return self._fail(f"{words[0]}: use {options}")
        name, rest = words[0], words[1:]
        if name in QUIT_WORDS:
            self.done = True
            return 0
        if name == "help":
            return self._help(rest)
        if name not in self.registry:
            # as gdb: a unique prefix of a command name is that command (`br`, `disp`)
            matches = [n for n in self.names() if n.startswith(name) and n in self.registry]
            commands = {self.registry.get(n).name for n in matches}
            if len(commands) != 1:
                more = f" ({', '.join(sorted(commands))}?)" if commands else ""
                return self._fail(f"unknown command: {name}{more} (type help for the list)")
            name = commands.pop()
        if not self._offered(name):
            return self._fail(f"{name} is not available in the shell")
        cmd = self.registry.get(name)
        if cmd.needs_live and not getattr(self.ctx.target, "live", False):
            return self._fail(f"{cmd.name} needs a live machine; this shell is on a snapshot")
        parser = cmd.parser(prog=cmd.name)
        if "-h" in rest or "--help" in rest:
            self.out.write(parser.format_help())
            return 0
        try:
            args = parser.parse_args(rest)
            return cmd.run(args, self.ctx)
        except KeyboardInterrupt:
            self._interrupt_guest()
            return 130
        except LhvdbgError as exc:
            return self._fail(self._explain(exc, cmd.name), exc)
        except Exception as exc:  # one line, back to the prompt; never a traceback
            return self._fail(f"internal error in {cmd.name}: {type(exc).__name__}: {exc}", exc)

    def _explain(self, exc: LhvdbgError, name: str = "") -> str:
        """One line: a command that needed a CPU after the guest exited says just that."""
        text = str(exc)
        session = getattr(self.ctx, "session", None)
        if isinstance(exc, MachineError) and session is not None:
            alive = _safe(lambda: bool(session.alive), default=True)
            if not alive:
                how = _safe(lambda: str(session.state_reason() or ""), default="")
                return (
                    f"{name}: {how or text}: no CPU to read (log, serial "
                    "and diagnose work from what was recorded; reset starts it again)"
                )
            state = _safe(lambda: str(session.runstate.name), default="")
            if state == "RUNNING":
                return f"{name}: the guest is running (Ctrl-C stops it)"
        return text

    def _interrupt_guest(self) -> None:
        """Ctrl-C during a command: stop the guest if it runs; the shell goes on."""
        session = getattr(self.ctx, "session", None)
        if session is not None and _safe(lambda: bool(session.alive), default=False):
            event = _safe(session.interrupt, default=None)
            detail = getattr(event, "detail", "") if event is not None else ""
            self.err.write(f"interrupted{': ' + detail if detail else ''}\n")
        else:
            self.err.write("interrupted\n")
        self.err.flush()

    def _fail(self, message: str, exc: BaseException | None = None) -> int:
        self.out.flush()
        self.err.write(f"error: {message}\n")
        self.err.flush()
        if exc is not None and self.on_error is not None:
            self.on_error(exc)
        return getattr(exc, "exit_code", 1) if exc is not None else 1

    def _help(self, rest: list[str]) -> int:
        if rest:
            name = rest[0]
            if name in BUILTINS or name == "exit":
                self.out.write(f"{name}: {BUILTINS.get(name, BUILTINS['quit'])}\n")
                return 0
            if name not in self.registry:
                return self._fail(f"unknown command: {name}")
            cmd = self.registry.get(name)
            self.out.write(cmd.parser(prog=cmd.name).format_help())
            return 0
        category = None
        for cmd in self.commands():
            if cmd.category != category:
                category = cmd.category
                self.out.write(f"{category}:\n")
            live = "" if not cmd.needs_live else " (live)"
            self.out.write(f"  {cmd.name:<12} {cmd.summary}{live}\n")
        self.out.write("shell:\n")
        for name, text in BUILTINS.items():
            self.out.write(f"  {name:<12} {text}\n")
        self.out.write("Type help CMD or CMD --help for a command's options.\n")
        return 0


def _safe(call: Callable[[], Any], *, default: Any) -> Any:
    try:
        return call()
    except Exception:
        return default


# --- completion ------------------------------------------------------------------------


def _register_names(ctx: Any) -> list[str]:
    target = getattr(ctx, "target", None)
    if target is None:
        return []
    cpu = _safe(target.cpu, default=None)
    if cpu is None:
        return []
    names = [*cpu.gprs, "pc", "sp", "fp", "ip", "eflags", "cr0", "cr2", "cr3", "cr4"]
    names += ["rip" if "rax" in cpu.gprs else "eip", *cpu.segments]
    return sorted(set(names))


# Commands whose arguments are address expressions: symbols and $registers complete there.
EXPRESSION_COMMANDS = frozenset(
    {"break", "b", "hbreak", "x", "xp", "pt", "watch", "rwatch", "awatch", "p", "print",
     "last-write", "until", "advance"}
)  # fmt: skip
# QEMU monitor commands offered after `monitor` (those that leave run control to gdb).
HMP_COMMANDS = (
    "info", "x", "xp", "p", "print", "gva2gpa", "memsave", "pmemsave", "dump-guest-memory",
    "sendkey", "nmi", "system_reset", "system_powerdown", "log", "logfile", "trace-event",
    "i", "o", "mce", "help",
)  # fmt: skip
HMP_INFO = (
    "registers", "pic", "lapic", "irq", "mem", "tlb", "mtree", "cpus", "status", "version",
    "roms", "pci", "qtree", "chardev", "kvm", "jit", "opcount", "profile", "history",
    "network", "block", "ioapic", "hpet", "numa", "mice", "qom-tree", "snapshots",
)  # fmt: skip
# Where a file name or a reference name is expected.
PATH_COMMANDS = frozenset({"save", "snapdiff", "source"})
REFERENCE_OPTIONS = frozenset({"--reference"})


def _expression_words(shell: Shell, current: str) -> Iterator[tuple[str, str]]:
    """Symbols, and ``$registers`` once a ``$`` is typed (after an operator too)."""
    cut = max(current.rfind(c) for c in "+-*(&")
    head, word = current[: cut + 1], current[cut + 1 :]
    if word.startswith("$"):
        for name in _register_names(shell.ctx):
            if name.startswith(word[1:]):
                yield head + "$" + name, "register"
        return
    target = getattr(shell.ctx, "target", None)
    symbols: Mapping[str, int] = _safe(target.symbols, default={}) if target is not None else {}
    for name in sorted(symbols):
        if name.startswith(word):
            yield head + name, "symbol"
    if not word:
        for name in _register_names(shell.ctx):
            yield head + "$" + name, "register"


def _references(current: str) -> Iterator[tuple[str, str]]:
    from lhvdbg.state.references import REFERENCE_NAMES

    for name in REFERENCE_NAMES:
        if name.startswith(current):
            yield name, "reference"


def _positional_choices(parser: argparse.ArgumentParser, index: int) -> list[str]:
    """The choices of the ``index``-th positional argument, if it has any."""
    positionals = [a for a in parser._actions if not a.option_strings]
    choices = positionals[index].choices if index < len(positionals) else None
    return [str(c) for c in choices] if choices is not None else []


def candidates(shell: Shell, words: list[str], current: str) -> Iterator[tuple[str, str]]:
    """Completions for the word being typed: ``(text, kind)`` pairs, by context.

    The first word completes to command names; later words by the command: symbols and
    ``$registers`` where an address expression goes (``break``, ``x``, ``pt``, ``watch``,
    ``p`` ...), QEMU monitor commands after ``monitor``, the choices of a positional
    argument (``decode`` kinds, ``set context``), option names after ``-``, reference
    names and paths after ``--reference`` and ``snapshot save|diff``, and file paths
    after ``/``, ``.`` or ``~``. Nothing else offers register names.
    """
    head = words[0] if words else ""
    if len(words) == 1 and any(head == first for first, _ in shell.phrases):
        for first, second in shell.phrases:
            if first == head and second.startswith(current):
                yield second, "command"
        return
    args = words[1:]
    if tuple(words[:2]) in shell.phrases:
        head = shell.phrases[(words[0], words[1])]
        args = words[2:]
    if not words or head == "help":
        for name in shell.names():
            if name.startswith(current):
                yield name, "command"
        return
    if head not in shell.registry:
        return
    if head == "monitor":
        pool = HMP_INFO if args[:1] == ["info"] and len(args) == 1 else HMP_COMMANDS
        if len(args) <= 1:
            yield from ((w, "monitor") for w in pool if w.startswith(current))
        return
    if args and args[-1] in REFERENCE_OPTIONS:
        yield from _references(current)
        yield from ((p, "file") for p in _paths(current))
        return
    if current.startswith("-"):
        parser = shell.registry.get(head).parser(prog=head)
        for action in parser._actions:
            for option in action.option_strings:
                if option.startswith(current):
                    yield option, "option"
        return
    name = shell.registry.get(head).name
    if name in PATH_COMMANDS:
        if name == "snapdiff":
            yield from _references(current)
        yield from ((p, "file") for p in _paths(current))
        return
    if current.startswith(("/", ".", "~")) or "/" in current:
        yield from ((p, "file") for p in _paths(current))
        return
    if name in EXPRESSION_COMMANDS or (
        name == "info" and args[:1] and "symbol".startswith(args[0])
    ):
        yield from _expression_words(shell, current)
        return
    parser = shell.registry.get(head).parser(prog=head)
    positional = [w for w in args if not w.startswith("-")]
    choices = _positional_choices(parser, len(positional))
    if name == "info" and not positional:
        choices = ["registers", "breakpoints", "symbol"]
    yield from ((c, "choice") for c in choices if c.startswith(current))


def _paths(prefix: str) -> Iterable[str]:
    """File names completing ``prefix`` (directories get a trailing ``/``)."""
    expanded = os.path.expanduser(prefix)
    head, slash, start = expanded.rpartition("/")
    directory = (head or "/") if slash else "."
    shown = prefix[: len(prefix) - len(start)]
    try:
        entries = sorted(os.listdir(directory))
    except OSError:
        return []
    return [
        shown + entry + ("/" if os.path.isdir(os.path.join(directory, entry)) else "")
        for entry in entries
        if entry.startswith(start) and (start.startswith(".") or not entry.startswith("."))
    ]


def _completer(shell: Shell) -> Any:
    from prompt_toolkit.completion import CompleteEvent, Completer, Completion
    from prompt_toolkit.document import Document

    class ShellCompleter(Completer):
        def get_completions(
            self, document: Document, complete_event: CompleteEvent
        ) -> Iterator[Completion]:
            text = document.text_before_cursor
            try:
                words = split_line(text)
            except ValueError:
                return
            current = "" if not text or text[-1].isspace() else (words.pop() if words else "")
            if words and words[0] == "x" and len(words) == 1 and current.startswith("/"):
                return
            for value, kind in candidates(shell, words, current):
                # a command name, a monitor command or a choice ends the word: the space
                # follows, so the next word never glues on (`break ` not `breakpit_`)
                ends = kind in ("command", "monitor", "choice", "reference")
                text = value + " " if ends else value
                yield Completion(
                    text, start_position=-len(current), display=value, display_meta=kind
                )

    return ShellCompleter()


# --- the loop --------------------------------------------------------------------------


def run_shell(
    registry: CommandTable,
    ctx: Any,
    *,
    banner: str = "",
    stdin: TextIO | None = None,
    history: Path | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    phrases: Mapping[tuple[str, str], str] | None = None,
    first: Iterable[str] = (),
) -> int:
    """Read and run commands until ``quit``, Ctrl-D or end of input; return 0.

    With a terminal on stdin, a prompt_toolkit prompt with completion and persistent
    history; otherwise (a pipe, a file) one command per line, no prompt. ``phrases`` maps
    two-word spellings to commands (``("snapshot", "save") -> "save"``); ``first`` lines
    run before any input is read, echoed after the prompt.
    """
    from lhvdbg.ui.context import SECTIONS

    stdin = stdin or sys.stdin
    shell = Shell(registry, ctx, on_error=on_error, phrases=phrases)
    if isinstance(getattr(ctx, "state", None), dict):
        ctx.state.setdefault("context", SECTIONS)  # the context view after each stop
    if banner:
        printer = getattr(ctx, "print", None)
        if callable(printer):  # wrapped at the terminal's width, between words
            from rich.text import Text

            printer(Text(banner.rstrip("\n")))
        else:
            ctx.stdout.write(banner.rstrip("\n") + "\n")
        ctx.stdout.flush()
    for line in first:
        ctx.stdout.write(f"{PROMPT}{line}\n")
        ctx.stdout.flush()
        shell.execute(line)
        ctx.stdout.flush()
        if shell.done:
            return 0
    if not stdin.isatty():
        for line in stdin:
            shell.execute(line)
            if shell.done:
                break
        return 0
    session = _prompt_session(shell, history or history_path())
    while not shell.done:
        try:
            line = session.prompt(PROMPT)
        except KeyboardInterrupt:
            continue  # Ctrl-C at the prompt: a fresh line
        except EOFError:
            ctx.stdout.write("quit\n")
            break
        shell.execute_or_repeat(line)
        ctx.stdout.flush()
    return 0


def _prompt_session(shell: Shell, path: Path) -> Any:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, History, InMemoryHistory

    history: History
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
        history = FileHistory(str(path))
    except OSError as exc:
        shell.err.write(f"warning: history not kept ({path}: {exc.strerror})\n")
        history = InMemoryHistory()
    return PromptSession(
        history=history,
        completer=_completer(shell),
        complete_while_typing=False,
        enable_history_search=True,
    )
