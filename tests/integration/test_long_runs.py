"""Long runs and Ctrl-C (issue 11 §6): on a terminal a run longer than half a second
shows what it is doing; piped, nothing; Ctrl-C prints the partial report and exits 130.
The kernel halts with interrupts off and never loads an IDT, so vector 8 never comes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import pytest

from tests.kernels import NO_IDT, reset_kernel

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
STATUS = r"lhvdbg: kernel entered: waiting for vector 8 … \d+\.\d s"


def _has_qemu_child(pid: int) -> bool:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        if comm.startswith("qemu-system") and text[text.rindex(")") + 2 :].split()[1] == str(pid):
            return True
    return False


@pytest.fixture(scope="module")
def quiet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return reset_kernel(tmp_path_factory.mktemp("long"), NO_IDT)


def test_status_line_and_ctrl_c_on_a_terminal(quiet: Path) -> None:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "lhvdbg", "--no-color", "break-on-df", "--kernel", str(quiet), "--timeout", "60"],
        cwd=str(ROOT), encoding="utf-8", timeout=60, dimensions=(40, 160),
        env={**os.environ, "TERM": "xterm"},  # the pty is a terminal, whatever TERM says here
    )  # fmt: skip
    try:
        child.expect(STATUS)  # after 0.5 s, on the terminal
        child.sendintr()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    out = " ".join(child.before.split())  # the report as words (the terminal wraps lines)
    assert child.exitstatus == 130
    assert "verdict: no-fault" in out
    assert "no fault seen so far: the run was interrupted before vector 8 fired" in out
    assert "note: interrupted (Ctrl-C) after " in out
    assert ", kernel entered: waiting for vector 8: this report covers what was seen so far" in out
    assert "at the stop: RIP 0x" in out  # the capture at the interruption


def test_piped_there_is_no_status_and_ctrl_c_reports(quiet: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lhvdbg", "break-on-df", "--kernel", str(quiet),
         "--timeout", "60", "--json"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not _has_qemu_child(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # into the run (the interruption may land in any phase: all report)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "waiting for vector" not in err and "…" not in err  # nothing when piped
    data = json.loads(out)
    assert data["stop"]["reason"] == "interrupted"
    assert data["notes"][-1].startswith("interrupted (Ctrl-C) after ")


def test_run_ctrl_c_prints_what_it_has(quiet: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lhvdbg", "run", "--kernel", str(quiet), "--timeout", "60"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not _has_qemu_child(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"reset-kernel: METHOD {NO_IDT}"  # the serial output streamed
    assert lines[-1].startswith(f"run: kernel {quiet.name} (tcg): interrupted (Ctrl-C) at halted")
