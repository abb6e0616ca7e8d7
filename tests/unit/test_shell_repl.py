"""The shell's dispatch, error handling and completion, offline on a recorded snapshot.

A real ``Registry`` with small commands defined here drives ``Shell.execute`` (the same
path the prompt takes); the terminal side (prompt_toolkit, Ctrl-C, history file) is tested
in tests/integration/test_shell*.py through a pseudo-terminal.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import time
from pathlib import Path

import pytest

from lhvdbg.commands.registry import Command, Context, Registry
from lhvdbg.errors import MemoryNotCaptured, QemuError
from lhvdbg.state.snapshot import load_snapshot
from lhvdbg.state.target import SnapshotTarget
from lhvdbg.ui.shell import Shell, candidates, history_path, run_shell, split_line

SNAPSHOT = Path(__file__).resolve().parent.parent / "fixtures" / "snapshots" / "long-tcg.json"


def _read(args: argparse.Namespace, ctx: Context) -> int:
    data = ctx.require_target().read_memory(int(args.address, 0), args.size)
    ctx.stdout.write(data.hex() + "\n")
    return 0


def _configure_read(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("address")
    parser.add_argument("size", type=int, nargs="?", default=4)


def _echo_fmt(args: argparse.Namespace, ctx: Context) -> int:
    ctx.stdout.write(f"fmt={args.fmt} addr={args.addr}\n")
    return 0


def _configure_x(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("fmt")
    parser.add_argument("addr")


def _configure_decode(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=("gdt", "gate", "tss"))
    parser.add_argument("value")


def _dead(args: argparse.Namespace, ctx: Context) -> int:
    raise QemuError("QEMU exited with status 1")


def _boom(args: argparse.Namespace, ctx: Context) -> int:
    raise KeyError("oops")


def _interrupted(args: argparse.Namespace, ctx: Context) -> int:
    raise KeyboardInterrupt


class _DeadSession:
    alive = False


class _Guest:
    """A guest that runs until it is interrupted, then stays stopped where it was."""

    alive = True

    def __init__(self) -> None:
        self.running = False
        self.pc = 0x100120

    def interrupt(self) -> object:
        self.running = False
        return argparse.Namespace(detail=f"interrupted at {self.pc:#x}")


def _run_until_interrupted(args: argparse.Namespace, ctx: Context) -> int:
    """Let the guest run, as ``continue`` does, until the user presses Ctrl-C: the command
    sends this process a real SIGINT once the guest runs."""
    guest = ctx.session
    assert isinstance(guest, _Guest)
    guest.running = True
    os.kill(os.getpid(), signal.SIGINT)
    while guest.running:
        guest.pc += 1
        time.sleep(0.001)
    ctx.stdout.write("the guest stopped by itself\n")
    return 0


def _where(args: argparse.Namespace, ctx: Context) -> int:
    guest = ctx.session
    assert isinstance(guest, _Guest)
    ctx.stdout.write(f"{'running' if guest.running else 'stopped'} at {guest.pc:#x}\n")
    return 0


@pytest.fixture
def shell() -> tuple[Shell, io.StringIO, io.StringIO]:
    registry = Registry()
    registry.add(Command("read", "read memory", _read, _configure_read, category="memory"))
    registry.add(Command("x", "examine", _echo_fmt, _configure_x, category="memory"))
    registry.add(Command("dead", "needs QEMU", _dead, category="machine"))
    registry.add(Command("boom", "a bug", _boom, category="machine"))
    registry.add(Command("spin", "runs", _interrupted, category="machine"))
    registry.add(Command("go", "run on", _dead, category="machine", needs_live=True))
    registry.add(Command("cli-only", "not here", _boom, where=frozenset({"cli"})))
    out, err = io.StringIO(), io.StringIO()
    ctx = Context(stdout=out, color=False, target=SnapshotTarget(load_snapshot(SNAPSHOT)))
    return Shell(registry, ctx, err=err), out, err


def test_dispatch_through_the_commands_parser(
    shell: tuple[Shell, io.StringIO, io.StringIO],
) -> None:
    sh, out, err = shell
    gdtr = sh.ctx.target.cpu().gdtr.base
    assert sh.execute(f"read {gdtr:#x} 8") == 0
    assert out.getvalue() == sh.ctx.target.read_memory(gdtr, 8).hex() + "\n"
    assert out.getvalue() == "0000000000000000\n"  # the null descriptor
    assert err.getvalue() == ""


def test_x_slash_format_is_split(shell: tuple[Shell, io.StringIO, io.StringIO]) -> None:
    sh, out, _ = shell
    assert split_line("x/16xb 0x1000") == ["x", "/16xb", "0x1000"]
    assert split_line("read ./file # comment") == ["read", "./file"]
    assert sh.execute("x/4gx $rsp") == 0
    assert out.getvalue() == "fmt=/4gx addr=$rsp\n"


@pytest.mark.parametrize(
    ("line", "message", "status"),
    [
        ("read 0x10 4", "error: memory 0x10..0x14 is not in the snapshot\n", 1),
        ("read", "error: read: the following arguments are required: address\n", 2),
        ("nosuch 1", "error: unknown command: nosuch (type help for the list)\n", 1),
        ("cli-only", "error: cli-only is not available in the shell\n", 1),
        ("go", "error: go needs a live machine; this shell is on a snapshot\n", 1),
        ("boom", "error: internal error in boom: KeyError: 'oops'\n", 1),
        ("read 'unterminated", "error: cannot parse the line: No closing quotation\n", 1),
    ],
)
def test_errors_are_one_line_and_the_shell_goes_on(
    shell: tuple[Shell, io.StringIO, io.StringIO], line: str, message: str, status: int
) -> None:
    sh, _, err = shell
    assert sh.execute(line) == status
    assert err.getvalue() == message
    assert not sh.done


def test_dead_qemu_suggests_reset(shell: tuple[Shell, io.StringIO, io.StringIO]) -> None:
    sh, _, err = shell
    sh.ctx.session = _DeadSession()
    assert sh.execute("dead") == 1
    assert err.getvalue() == (
        "error: dead: QEMU exited with status 1: no CPU to read (log, serial and diagnose work"
        " from what was recorded; reset starts it again)\n"
    )


def test_ctrl_c_during_a_command_interrupts_the_guest() -> None:
    """A real SIGINT while the guest runs: the command ends with 130, the guest is
    stopped where it was (as the next command sees it), and the shell takes commands."""
    registry = Registry()
    registry.add(Command("cont", "run on", _run_until_interrupted, category="machine"))
    registry.add(Command("where", "run state", _where, category="machine"))
    out, err = io.StringIO(), io.StringIO()
    sh = Shell(registry, Context(stdout=out, color=False), err=err)
    sh.ctx.session = _Guest()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert sh.execute("cont") == 130
    finally:
        signal.signal(signal.SIGINT, previous)
    (line,) = err.getvalue().splitlines()
    stopped_at = int(line.removeprefix("interrupted: interrupted at "), 16)
    assert stopped_at >= 0x100120
    assert "stopped by itself" not in out.getvalue()  # the command did not run to its end
    assert not sh.done
    assert sh.execute("where") == 0
    assert out.getvalue() == f"stopped at {stopped_at:#x}\n"  # still there, not running


def test_ctrl_c_with_no_guest_running_says_interrupted_only(
    shell: tuple[Shell, io.StringIO, io.StringIO],
) -> None:
    sh, out, err = shell
    assert sh.execute("spin") == 130
    assert (out.getvalue(), err.getvalue()) == ("", "interrupted\n")
    assert sh.execute("x /4x 0x10") == 0  # the shell goes on


def test_errors_reach_on_error(shell: tuple[Shell, io.StringIO, io.StringIO]) -> None:
    sh, _, _ = shell
    seen: list[BaseException] = []
    sh.on_error = seen.append
    sh.execute("read 0x10")
    assert len(seen) == 1 and isinstance(seen[0], MemoryNotCaptured)


def test_help(shell: tuple[Shell, io.StringIO, io.StringIO]) -> None:
    sh, out, _ = shell
    assert sh.execute("help") == 0
    text = out.getvalue()
    assert "machine:\n  boom         a bug\n" in text
    assert "  go           run on (live)\n" in text
    assert "memory:\n  read         read memory\n" in text
    assert "cli-only" not in text
    assert "  quit         leave\n" in text
    out.truncate(0), out.seek(0)
    assert sh.execute("help read") == 0
    assert out.getvalue().startswith("usage: read [-h] [--json] address [size]")
    out.truncate(0), out.seek(0)
    assert sh.execute("read --help") == 0
    assert "positional arguments:" in out.getvalue()


@pytest.mark.parametrize("word", ["quit", "exit", "q"])
def test_quit(shell: tuple[Shell, io.StringIO, io.StringIO], word: str) -> None:
    sh, _, _ = shell
    assert sh.execute(word) == 0 and sh.done


def test_completion(shell: tuple[Shell, io.StringIO, io.StringIO], tmp_path: Path) -> None:
    sh, _, _ = shell
    assert list(candidates(sh, [], "re")) == [("read", "command")]
    assert ("quit", "command") in list(candidates(sh, [], "q"))
    assert list(candidates(sh, ["help"], "b")) == [("boom", "command")]
    assert list(candidates(sh, ["read"], "--j")) == [("--json", "option")]
    registers = dict(candidates(sh, ["x", "/4gx"], "$rs"))
    assert registers == {"$rsp": "register", "$rsi": "register"}
    assert dict(candidates(sh, ["x", "/4gx"], "$rsp+8-$r1")) == {
        "$rsp+8-$r10": "register",
        "$rsp+8-$r11": "register",
        "$rsp+8-$r12": "register",
        "$rsp+8-$r13": "register",
        "$rsp+8-$r14": "register",
        "$rsp+8-$r15": "register",
    }
    # register names only where an address expression goes, never after other commands
    assert [kind for _, kind in candidates(sh, ["read"], "c")] == []
    assert [kind for _, kind in candidates(sh, ["read"], "$r")] == []
    (tmp_path / "snap.json").write_text("{}")
    (tmp_path / "sub").mkdir()
    found = sorted(candidates(sh, ["read"], str(tmp_path) + "/s"))
    assert found == [(f"{tmp_path}/snap.json", "file"), (f"{tmp_path}/sub/", "file")]


def test_symbols_complete(tmp_path: Path) -> None:
    registry = Registry()
    registry.add(Command("read", "read memory", _read, _configure_read))
    snapshot = load_snapshot(SNAPSHOT)
    from dataclasses import replace

    with_symbols = replace(snapshot, symbols={"kernel_main": 0x100120, "kbd_handler": 0x100400})
    registry.add(Command("x", "examine", _echo_fmt, _configure_x))
    registry.add(Command("monitor", "HMP", _echo_fmt, _configure_x))
    registry.add(Command("decode", "decode", _echo_fmt, _configure_decode))
    registry.add(Command("save", "save", _echo_fmt, _configure_x))
    sh = Shell(
        registry,
        Context(stdout=io.StringIO(), target=SnapshotTarget(with_symbols)),
        phrases={("snapshot", "save"): "save"},
    )
    assert list(candidates(sh, ["x", "/2gx"], "k")) == [
        ("kbd_handler", "symbol"),
        ("kernel_main", "symbol"),
    ]
    assert list(candidates(sh, ["x"], "*(kernel")) == [("*(kernel_main", "symbol")]
    assert list(candidates(sh, ["read"], "k")) == []  # not an address argument
    assert list(candidates(sh, ["monitor"], "inf")) == [("info", "monitor")]
    assert ("pic", "monitor") in list(candidates(sh, ["monitor", "info"], "p"))
    assert all(kind == "monitor" for _, kind in candidates(sh, ["monitor", "info"], ""))
    assert list(candidates(sh, ["decode"], "g")) == [("gdt", "choice"), ("gate", "choice")]
    (tmp_path / "snap.json").write_text("{}")
    files = list(candidates(sh, ["snapshot", "save"], str(tmp_path) + "/s"))
    assert files == [(f"{tmp_path}/snap.json", "file")]


def test_history_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert history_path() == tmp_path / "lhvdbg" / "history"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert history_path() == tmp_path / ".local" / "state" / "lhvdbg" / "history"


def test_a_long_banner_is_wrapped_at_the_width(
    shell: tuple[Shell, io.StringIO, io.StringIO],
) -> None:
    sh, out, _ = shell
    sh.ctx.width = 40
    banner = (
        "lhvdbg shell on snapshot snaps/good.json (amd64, long mode, QMP stop after 1.0 s); "
        "read-only. Type help."
    )
    assert run_shell(sh.registry, sh.ctx, stdin=io.StringIO(""), banner=banner) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and all(len(line) <= 40 for line in lines)
    assert " ".join(lines) == banner


def test_piped_input_runs_each_line(shell: tuple[Shell, io.StringIO, io.StringIO]) -> None:
    sh, out, _ = shell
    lines = io.StringIO("x/2wx 0x10\n\nquit\nx/1b never\n")
    assert run_shell(sh.registry, sh.ctx, stdin=lines, banner="hello") == 0
    assert out.getvalue() == "hello\nfmt=/2wx addr=0x10\n"
