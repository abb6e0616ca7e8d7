"""What a scenario file may do to the host: by default, nothing.

A scenario file is data a user may download with a bug report, so by default it may not
run a host command, open a socket, or write outside its own folder (or the output folder
given on the command line). ``lhvdbg scenario run --allow-host`` lifts this for a trusted
file, and the result says so. The Python API (:class:`~lhvdbg.scenario.runner.ScenarioRun`)
is code the user runs, and is not restricted; nor is the interactive shell.

What is refused without ``--allow-host`` (each an allow-list, so what is not known to be
harmless is refused, not what is known to be harmful):

* ``run = "gdb ..."``: gdb commands other than inspecting and breakpoints; in particular
  ``shell``/``!``, ``pipe``/``|``, ``python``/``pi``, ``source``, ``eval``, ``with``,
  ``alias``, ``define``, ``dump``, ``target``, ``set logging`` and the ``$_shell``
  function (gdb runs a host command for each of them, or writes a file, or opens a socket);
* ``run = "monitor ..."`` (and gdb's ``monitor``): HMP commands other than ``info``,
  ``x``/``xp``, ``print``, port I/O, ``system_reset``, ``nmi``, ``sendkey``, ``log`` ...;
  in particular ``migrate`` (``exec:``/``file:``), ``chardev-add``, ``netdev_add``,
  ``gdbserver``, ``memsave``/``pmemsave``/``dump-guest-memory``, ``screendump``;
* ``run = "save ..."`` (writes where its argument says: use a ``capture = FILE`` step);
* ``[options] extra_args`` other than ``-smp``, ``-cpu``, ``-m``, ``-machine``, ``-rtc``,
  ``-d``, ``-global``, ``-boot``, ``-no-reboot``, ``-no-shutdown``, ``-nodefaults`` and
  ``-device isa-debug-exit``: no ``-netdev``, ``-chardev``, ``-serial tcp:``, ``-gdb``,
  ``-vnc``, ``-D FILE``, ``-incoming`` ...;
* ``capture = FILE`` outside the scenario's folder and the output folder.

Separately, and even with ``--allow-host``, a ``run`` step may not let the guest run
(``continue``, ``stepi``, ``until-df``, ``serial --follow``; gdb's and HMP's ``c``/``cont``):
the step actions of the same names do, within the step and scenario time limits.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from lhvdbg.errors import ScenarioError
from lhvdbg.scenario.model import Origin, Scenario, Step

ALLOW_HOST = "--allow-host"

# gdb CLI commands (and their usual abbreviations) a scenario may send: inspection and
# breakpoints. Everything else needs --allow-host.
GDB_ALLOWED = frozenset(
    [
        "info",
        "i",
        "inf",
        "x",
        "print",
        "p",
        "output",
        "printf",
        "echo",
        "ptype",
        "whatis",
        "list",
        "l",
        "disassemble",
        "disas",
        "backtrace",
        "bt",
        "where",
        "frame",
        "f",
        "up",
        "down",
        "display",
        "undisplay",
        "break",
        "b",
        "tbreak",
        "hbreak",
        "thbreak",
        "watch",
        "rwatch",
        "awatch",
        "delete",
        "d",
        "disable",
        "enable",
        "condition",
        "ignore",
        "show",
    ]
)
# gdb commands that take a sub-command which may run others ("frame apply all shell id").
GDB_APPLY = frozenset({"frame", "f", "thread", "t"})
# HMP commands a scenario may send: read state, poke the guest, never the host.
HMP_ALLOWED = frozenset(
    [
        "info",
        "x",
        "xp",
        "print",
        "p",
        "i",
        "o",
        "sum",
        "gva2gpa",
        "system_reset",
        "nmi",
        "sendkey",
        "mce",
        "cpu",
        "log",
        "help",
        "?",
    ]
)
# Commands that make the guest run: only the step actions (with their time limits) may.
RUNS_GUEST = {
    "continue": "continue",
    "c": "continue",
    "cont": "continue",
    "stepi": "stepi",
    "si": "stepi",
    "until-df": "until_df",
}
GDB_RUNS_GUEST = frozenset(
    [
        "c",
        "continue",
        "fg",
        "s",
        "step",
        "si",
        "stepi",
        "n",
        "next",
        "ni",
        "nexti",
        "finish",
        "until",
        "u",
        "advance",
        "jump",
        "j",
        "call",
    ]
)
HMP_RUNS_GUEST = frozenset({"c", "cont"})

# QEMU options a scenario's extra_args may use, and whether each takes a value.
QEMU_ALLOWED = {
    "smp": True,
    "cpu": True,
    "m": True,
    "machine": True,
    "M": True,
    "rtc": True,
    "d": True,
    "global": True,
    "boot": True,
    "no-reboot": False,
    "no-shutdown": False,
    "nodefaults": False,
    "device": True,  # only the devices below
}
QEMU_DEVICES = frozenset({"isa-debug-exit"})
# Words in a QEMU option value that name a host resource (a file, a socket, a command).
_HOST_WORDS = ("file", "path", "socket", "exec", "tcp", "udp", "unix", "chardev", "netdev")


@dataclass(frozen=True)
class HostUse:
    """Something a scenario does to the host, and where the file says it."""

    origin: Origin
    what: str

    def __str__(self) -> str:
        return f"{self.origin}: {self.what}"


def gdb_host_use(line: str) -> str | None:
    """Why the gdb command ``line`` needs --allow-host, or None when it is harmless."""
    text = line.strip()
    if not text:
        return None
    if text[0] in "!|":
        return f"gdb {text[0]!r} runs a host command"
    if "$_shell" in text:
        return "gdb's $_shell function runs a host command"
    word = _first_word(text)
    rest = text[len(word) :].split()
    if word == "monitor":
        return hmp_host_use(" ".join(rest))
    if word == "set":
        if rest and (rest[0] in ("var", "variable") or rest[0][:1] in "$*{"):
            return None
        return f"gdb 'set {rest[0] if rest else ''}' changes gdb itself (files, logging)"
    if word in GDB_APPLY and rest and rest[0] == "apply":
        return f"gdb '{word} apply' runs other commands"
    if word not in GDB_ALLOWED:
        return f"gdb {word!r} is not an inspection or breakpoint command (it may run host commands)"
    return None


def hmp_host_use(line: str) -> str | None:
    """Why the HMP command ``line`` needs --allow-host, or None when it is harmless."""
    word = _first_word(line.strip())
    if not word or word in HMP_ALLOWED:
        return None
    return f"monitor {word!r} may execute, migrate, write files or open sockets on the host"


def qemu_args_host_use(args: Sequence[str]) -> str | None:
    """Why the extra QEMU arguments ``args`` need --allow-host, or None."""
    index = 0
    while index < len(args):
        arg = args[index]
        name = arg.lstrip("-")
        if not arg.startswith("-") or name not in QEMU_ALLOWED:
            return f"QEMU argument {arg!r} is not one a scenario may add"
        value = None
        if QEMU_ALLOWED[name]:
            if index + 1 >= len(args):
                return f"QEMU argument {arg!r} lacks its value"
            index += 1
            value = args[index]
        if value is not None:
            if name == "device" and value.split(",")[0] not in QEMU_DEVICES:
                return f"QEMU device {value.split(',')[0]!r} is not one a scenario may add"
            lowered = value.lower()
            if any(word in lowered for word in _HOST_WORDS):
                return f"QEMU argument {arg} {value!r} names a host file, socket or command"
        index += 1
    return None


def run_line_host_use(line: str) -> str | None:
    """Why the ``run`` step ``line`` needs --allow-host, or None."""
    words = _words(line)
    if not words:
        return None
    name, rest = words[0], " ".join(_sent(words))  # the line a pass-through sends
    if name == "gdb":
        return gdb_host_use(rest)
    if name == "monitor":
        return hmp_host_use(rest)
    if name == "save":
        return "'save' writes a file where its argument says (use a capture = FILE step)"
    return None


def run_line_runs_guest(line: str) -> str | None:
    """Why the ``run`` step ``line`` would let the guest run (refused always), or None."""
    words = _words(line)
    if not words:
        return None
    name = words[0]
    if name in RUNS_GUEST:
        return (
            f"'{name}' lets the guest run: use a {RUNS_GUEST[name]} step, which obeys the "
            "time limits"
        )
    if name == "serial" and any(w in ("--follow", "-f") for w in words[1:]):
        return "'serial --follow' lets the guest run: use a wait_serial step"
    sent = _sent(words)
    if name == "gdb" and sent and _first_word(sent[0]) in GDB_RUNS_GUEST:
        return f"gdb {sent[0]!r} lets the guest run: use a continue or stepi step"
    if name == "monitor" and sent and _first_word(sent[0]) in HMP_RUNS_GUEST:
        return f"monitor {sent[0]!r} lets the guest run: use a continue step"
    return None


def step_host_uses(step: Step) -> Iterator[str]:
    """What ``step`` does to the host (its ``run`` line), one reason each."""
    if step.action == "run":
        reason = run_line_host_use(str(step.arg))
        if reason is not None:
            yield reason


@dataclass(frozen=True)
class Writable:
    """Where a scenario may write: its own folder and the output folder (when given).
    Relative ``capture`` names go into the output folder when there is one, else beside
    the scenario file."""

    folder: Path | None  # the scenario file's folder (None: built in Python)
    output: Path | None = None

    def path_for(self, name: str) -> Path:
        """Where ``capture = name`` writes (not yet checked)."""
        path = Path(name)
        if path.is_absolute():
            return path
        base = self.output or self.folder
        return base / path if base is not None else path

    def check(self, name: str, origin: Origin) -> Path:
        """:meth:`path_for` ``name``, or ScenarioError when it lies outside both folders
        (symbolic links and ``..`` resolved first)."""
        path = self.path_for(name)
        resolved = path.resolve()
        folders = [f for f in (self.folder, self.output) if f is not None]
        if any(resolved.is_relative_to(f.resolve()) for f in folders):
            return path
        allowed = " or ".join(str(f) for f in folders) or "any folder"
        raise ScenarioError(
            f"{origin}: capture {name!r} writes outside {allowed} (refused; {ALLOW_HOST} "
            "lifts this for a trusted file)",
            file=origin.file,
            line=origin.line,
            field="capture",
        )


def writable_for(scenario: Scenario, output: Path | None) -> Writable:
    """The folders ``scenario`` may write into."""
    return Writable(scenario.path.parent if scenario.path is not None else None, output)


def host_uses(scenario: Scenario, writable: Writable) -> list[HostUse]:
    """Everything in ``scenario`` that needs --allow-host, one entry each."""
    uses: list[HostUse] = []
    where = Origin(str(scenario.path) if scenario.path else "<python>")
    extra = scenario.options.get("extra_args")
    if isinstance(extra, list | tuple):
        reason = qemu_args_host_use([str(a) for a in extra])
        if reason is not None:
            uses.append(HostUse(where, f"options.extra_args: {reason}"))
    for step in scenario.steps:
        uses += [HostUse(step.origin, reason) for reason in step_host_uses(step)]
        if step.action == "capture" and isinstance(step.arg, str):
            path = writable.path_for(step.arg)
            try:
                writable.check(step.arg, step.origin)
            except ScenarioError:
                uses.append(HostUse(step.origin, f"capture writes outside its folders: {path}"))
    return uses


def _first_word(text: str) -> str:
    """The command word of a gdb/HMP line: up to a space or a ``/FMT`` (``x/4x``)."""
    word = text.split(maxsplit=1)[0] if text.split() else ""
    return word.split("/", 1)[0] if "/" in word[1:] and not word.startswith("/") else word


def _sent(words: list[str]) -> list[str]:
    """The words a ``gdb``/``monitor`` pass-through sends: those after its own options
    (``--json``)."""
    rest = words[1:]
    while rest and rest[0].startswith("--"):
        rest = rest[1:]
    return rest


def _words(line: str) -> list[str]:
    """The words of a ``run`` line as the shell splits them (``x/FMT`` is ``x`` and
    ``/FMT``), so the policy judges what will run."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        words = line.split()
    if words and "/" in words[0] and not words[0].startswith(("/", ".", "~")):
        name, _, fmt = words[0].partition("/")
        words[0:1] = [name, "/" + fmt]
    return words
