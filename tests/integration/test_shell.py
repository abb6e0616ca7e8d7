"""``lhvdbg shell`` driven through a pseudo-terminal against the real firmware.

Each test starts the real program under pexpect (a pty, TERM=xterm, prompt_toolkit doing
its real rendering), types commands, and asserts on what appears: completion, Ctrl-C
stopping a running guest, errors returning to the prompt, a killed QEMU brought back with
``reset``, Ctrl-D quitting, the history file. A marker in the kernel command line lets
the tests check that no QEMU of theirs outlives the shell.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.conftest import processes

ROOT = Path(__file__).resolve().parents[2]
LHVDBG = [sys.executable, "-m", "lhvdbg"]
PROMPT = "lhvdbg>"

pytestmark = pytest.mark.integration


class Terminal:
    """A running ``lhvdbg shell`` in a pty, with helpers that wait for the prompt."""

    def __init__(self, args: list[str], state_dir: Path, timeout: float = 15.0) -> None:
        env = dict(
            os.environ,
            XDG_STATE_HOME=str(state_dir),
            TERM="xterm",
            PROMPT_TOOLKIT_NO_CPR="1",
            NO_COLOR="1",
        )
        self.child = pexpect.spawn(
            LHVDBG[0],
            [*LHVDBG[1:], "shell", *args],
            env=env,
            cwd=str(ROOT),
            encoding="utf-8",
            timeout=timeout,
            dimensions=(50, 160),
        )
        self.transcript: list[str] = []
        self.child.logfile_read = _Collect(self.transcript)

    def prompt(self) -> str:
        """Wait for the prompt; return what was printed before it (escape codes removed)."""
        self.child.expect(PROMPT)
        before = _plain(self.child.before)
        time.sleep(0.15)  # let prompt_toolkit switch the terminal to raw mode
        return before

    def run(self, line: str) -> str:
        """Type ``line`` and Enter; return the output up to the next prompt."""
        self.child.send(line + "\r")
        return self.enter()

    def enter(self) -> str:
        """After Enter: skip the redraw of the accepted line (it ends with a newline),
        then return the output up to the next prompt."""
        self.child.expect("\n")
        return self.prompt()

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)
        self.child.close()


class _Collect:
    def __init__(self, sink: list[str]) -> None:
        self.sink = sink

    def write(self, text: str) -> None:
        self.sink.append(text)

    def flush(self) -> None:
        pass


_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")


def _plain(text: str | None) -> str:
    return _ESCAPE.sub("", text or "")


def _completed(typed: str, inserted: str) -> str:
    """A pattern for ``typed`` followed on the screen by the ``inserted`` rest of a
    completion. prompt_toolkit redraws only what changed: when it drew ``typed`` before
    the Tab was handled (a loaded machine), the completion arrives as the new characters
    alone, after cursor and mode escapes; else the whole word comes at once."""
    return re.escape(typed) + r"(?:\x1b\[[0-9;?]*[A-Za-z])*" + re.escape(inserted)


def _running(marker: str) -> list[str]:
    """QEMU processes whose command line carries ``marker``."""
    return [
        f"{pid} {cmdline}"
        for pid, cmdline, _ in processes()
        if marker in cmdline and "qemu-system" in cmdline
    ]


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def live(firmware_built: Path, state_dir: Path) -> Iterator[tuple[Terminal, str]]:
    """A shell on the good amd64 firmware counting ticks for a long time."""
    marker = f"shelltest-{uuid.uuid4().hex[:12]}"
    term = Terminal(["--variant", "good", "--append", f"ticks=1000000 {marker}"], state_dir)
    try:
        yield term, marker
    finally:
        term.close()
    deadline = time.monotonic() + 5
    while _running(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _running(marker) == [], "a QEMU of this test outlived the shell"


def test_live_shell_session(live: tuple[Terminal, str], state_dir: Path) -> None:
    term, marker = live
    banner = term.prompt()
    assert re.search(r"lhvdbg shell: amd64 lhv-good.elf, QEMU \d+\.\d+\.\d+ \(tcg\)", banner)
    assert len(_running(marker)) == 1  # the QEMU that carries the marker

    # completion of a command name, then of a symbol
    term.child.send("hbre\t")
    term.child.expect(_completed("hbre", "ak"))
    term.child.send("kernel_m\t")  # Tab after the command name left the space
    term.child.expect(_completed("kernel_m", "ain"))  # the rest of kernel_main is inserted
    out = term.run("")
    assert re.search(r"hardware breakpoint 1 at kernel_main \(0x[0-9a-f]+\)", out), out

    out = term.run("continue")
    assert re.search(r"breakpoint 1 hit at kernel_main \(0x[0-9a-f]+\)", out), out
    out = term.run("x/2i $pc")
    assert "<kernel_main>:" in out and "push" in out, out
    out = term.run("stepi 2")
    assert re.search(r"step: at kernel_main\+0x[0-9a-f]+", out), out

    # errors print one line and return to the prompt
    out = term.run("break no_such_symbol")
    assert out.strip().splitlines()[-1] == "error: unknown symbol: no_such_symbol"
    out = term.run("frobnicate")
    assert "error: unknown command: frobnicate (type help for the list)" in out
    out = term.run("stepi 0")
    assert "error: stepi: count must be at least 1, got 0" in out

    # Ctrl-C stops a running guest, not the shell
    term.run("delete")
    term.child.send("continue\r")
    term.child.expect("\n")
    time.sleep(0.6)
    term.child.sendcontrol("c")
    out = term.prompt()
    assert re.search(r"interrupted at \S+ \(0x[0-9a-f]+\)", out), out
    out = term.run("serial -n 1")
    assert re.search(r"tick \d+", out), out  # the guest ran, its timer ticked
    assert term.child.isalive()

    # a dead QEMU: one line, then reset brings it back
    term.run("monitor quit")
    out = term.run("stepi")
    assert "QEMU has exited; type reset to start it again" in out, out
    out = term.run("reset")
    assert re.search(r"machine restarted in \d+\.\d+ s", out), out
    out = term.run("break kernel_main")
    assert "breakpoint 1 at kernel_main" in out
    out = term.run("continue")
    assert "breakpoint 1 hit at kernel_main" in out

    # Ctrl-C at the prompt clears the line; Ctrl-D quits cleanly
    term.child.send("half-typed")
    term.child.sendcontrol("c")
    term.prompt()
    term.child.sendcontrol("d")
    term.child.expect(pexpect.EOF)
    term.child.close()
    assert term.child.exitstatus == 0
    history = (state_dir / "lhvdbg" / "history").read_text()
    assert "+hbreak kernel_main\n" in history and "+monitor quit\n" in history
    assert "half-typed" not in history


@pytest.fixture
def captured(firmware_built: Path, tmp_path: Path) -> Path:
    """A snapshot of the good amd64 firmware stopped at pit_init, saved by the live shell."""
    path = tmp_path / "at-pit-init.json"
    out = subprocess.run(
        [*LHVDBG, "shell", "--variant", "good"],
        input=f"break pit_init\ncontinue\nsnapshot save {path}\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    assert f"saved {path} (amd64, long; " in out.stdout, out.stdout + out.stderr
    return path


def test_snapshot_shell(captured: Path, state_dir: Path) -> None:
    term = Terminal(["--snapshot", str(captured)], state_dir)
    try:
        banner = term.prompt()
        assert "lhvdbg shell on snapshot" in banner and "read-only" in banner
        term.child.send("x/2gx $rs\t")
        term.child.expect(r"\$rsi\W+(\x1b\[0m)?\s*register")  # a menu offers both
        term.child.expect(r"\$rsp\W+(\x1b\[0m)?\s*register")
        term.child.send("p")
        time.sleep(0.2)
        term.child.send("\r")
        term.child.expect(r"(0x[0-9a-f]+)( <[^>]+>)?:\s+0x[0-9a-f]{16}\s+0x[0-9a-f]{16}")
        rsp = int(term.child.match.group(1), 16)
        term.prompt()
        out = term.run("x/2gx $rsp")
        assert out.strip().startswith(f"{rsp:#x}"), out
        out = term.run("x/2gx $rsp --json")
        assert f'"address": "{rsp:#x}"' in out and '"format": "/2xg"' in out
        out = term.run("continue")
        assert "error: continue needs a live machine; this shell is on a snapshot" in out
        out = term.run("x/4xb 0x10")
        assert "error: memory 0x10..0x14 is not in the snapshot" in out
        # file paths complete (the history directory exists by now)
        term.child.send(f"snapshot save {state_dir}/lhv\t")
        term.child.expect("dbg/")  # the rest of "lhvdbg/" is inserted
        out = term.run("copy.json")
        assert f"saved {state_dir}/lhvdbg/copy.json (amd64, long; " in out, out
        out = term.run("help x")
        assert "usage: x [-h] [--bits {16,32,64}] [--json] [format] [address]" in out
        term.child.send("quit\r")
        term.child.expect(pexpect.EOF)
        term.child.close()
        assert term.child.exitstatus == 0
    finally:
        term.close()


def test_shell_walks_through_the_lhv_bug(firmware_built: Path, state_dir: Path) -> None:
    """until-df on the PIC-unremapped build, then the views, the log, a step that the
    register view marks, and the TSS comparison with Pebbles — in one i386 session."""
    term = Terminal(["--variant", "pic-unremapped", "--arch", "i386"], state_dir)
    try:
        term.prompt()
        out = term.run("until-df")
        assert "vector 0x8 handler isr_8 reached" in out, out
        assert "vector 8 was a hardware interrupt, not a double fault" in out
        assert "[pic-not-remapped]" in out
        out = term.run("pic")
        assert re.search(r"master\s+0x08\s+0x08-0x0f", out), out
        out = term.run("log -n 1")
        assert re.search(r"v=08 0x08\s+hardware\s+at kernel_main\+0x[0-9a-f]+", out), out
        out = term.run("stepi")
        assert re.search(r"step: at isr_8\+0x[0-9a-f]+", out), out
        out = term.run("regs")
        # changed since the previous stop: marked, with the old value beside
        changed = re.search(r"\*eip\s+(0x[0-9a-f]{8})\s+<isr_8\+0x\w+>\s+(0x[0-9a-f]{8})", out)
        assert changed is not None and changed.group(1) != changed.group(2), out
        assert re.search(r"^\s*eax\s+0x[0-9a-f]{8}\s*$", out, re.MULTILINE), out  # unchanged
        out = term.run("diff-tss --reference pebbles")
        assert "the CPU needs the TSS now: no" in out and "tr.selector" in out
        out = term.run("snapshot save " + str(state_dir / "df.json"))
        assert f"saved {state_dir / 'df.json'} (i386, protected; " in out
        out = term.run(f"snapshot diff {state_dir / 'df.json'} .")
        assert "no differences between A and B" in out, out
        term.run("stepi")
        out = term.run(f"snapshot diff {state_dir / 'df.json'} .")
        assert re.search(r"cpu\.ip\s+0x[0-9a-f]+\s+0x[0-9a-f]+\s+instruction pointer", out), out
        term.child.send("quit\r")
        term.child.expect(pexpect.EOF)
    finally:
        term.close()
