"""Owned child processes: own process group, killed with their group, and killed by the
kernel when the Python parent dies (PR_SET_PDEATHSIG), even by SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from lhvdbg.errors import ToolMissingError
from lhvdbg.machine.process import (
    exit_status,
    is_running,
    kill_process_group,
    popen_owned,
    which,
)


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pid: int, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.01)
    return False


def test_own_group_and_group_kill() -> None:
    # a shell that starts a grandchild: both must go
    proc = popen_owned(["sh", "-c", "sleep 60 & echo $!; wait"], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        grandchild = int(proc.stdout.readline())
        assert os.getpgid(proc.pid) == proc.pid != os.getpgid(0)
        assert os.getpgid(grandchild) == proc.pid
        assert is_running(proc) and exit_status(proc) is None
    finally:
        kill_process_group(proc, grace=0.2)
    assert not is_running(proc)
    assert proc.returncode is not None
    assert wait_gone(grandchild)


def test_exit_status_does_not_reap() -> None:
    proc = popen_owned(["sh", "-c", "exit 7"])
    deadline = time.monotonic() + 3
    while is_running(proc) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert exit_status(proc) == 7
    assert proc.returncode is None  # still unreaped: its pid cannot be reused yet
    kill_process_group(proc)
    assert proc.returncode == 7


CHILD = """
import signal, sys, time
sys.path.insert(0, {root!r})
from lhvdbg.machine.process import popen_owned
if {ignore!r}:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
p = popen_owned(["sleep", "60"])
print(p.pid, flush=True)
time.sleep(60)
"""
SIGINT_BIT = 1 << (signal.SIGINT - 1)


def wait_for_program(pid: int, name: bytes, timeout: float = 3.0) -> bool:
    """Whether process ``pid`` runs program ``name`` within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if f.read().split(b"\0")[0].endswith(name):
                return True
        time.sleep(0.01)
    return False


def ignored_signals(pid: int) -> int:
    """The SigIgn mask of ``/proc/<pid>/status``."""
    with open(f"/proc/{pid}/status") as f:
        line = next(x for x in f if x.startswith("SigIgn:"))
    return int(line.split()[1], 16)


@pytest.mark.parametrize(
    "ignore", [False, True], ids=["setpriv-pdeathsig", "fork-prctl-when-sigint-ignored"]
)
def test_children_die_with_a_sigkilled_parent(ignore: bool) -> None:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parent = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(root=root, ignore=ignore)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert pid_alive(child)
        assert wait_for_program(child, b"sleep")  # (setpriv, if used, exec'd it)
        # an ignored SIGINT in lhvdbg is not passed on (Ctrl-C must reach a child)
        assert not ignored_signals(child) & SIGINT_BIT
        parent.send_signal(signal.SIGKILL)
        parent.wait(5)
        assert wait_gone(child), "the owned child outlived its SIGKILLed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_which_names_the_package() -> None:
    with pytest.raises(ToolMissingError, match="no-such-qemu not found: install qemu"):
        which("no-such-qemu", "qemu-system-x86 (Debian package)")


def test_a_missing_program_is_a_tool_error() -> None:
    with pytest.raises(ToolMissingError, match="no-such-program not found"):
        popen_owned(["no-such-program", "--version"])
