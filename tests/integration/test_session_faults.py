"""Fault injection: QEMU or gdb killed, signals to the ``lhvdbg`` process, timeouts, bad
kernels, missing tools. Each time: one clean ``lhvdbg: ...`` line (or a typed error), a
non-zero exit, and no QEMU or gdb left behind."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lhvdbg.errors import GdbError, QemuError, StateError
from lhvdbg.machine.runstate import Runstate
from lhvdbg.machine.session import LaunchConfig, Session
from tests.integration.test_session_tiny import build_tiny

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def forever(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("forever"), "forever", TICKS=0x7FFFFFFF)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(") ", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            if ppid == pid:
                out.append(int(entry))
    return out


def all_gone(pids: list[int], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.02)
    return False


def lhvdbg(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lhvdbg", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lhvdbg: ") and "Traceback" not in result.stderr
    return lines[0]


def session_pids(s: Session) -> list[int]:
    assert s._qemu is not None
    return [s._qemu.pid, s.gdb.pid]


def test_qemu_killed(forever: Path) -> None:
    with Session(LaunchConfig(kernel=forever)) as s:
        pids = session_pids(s)
        os.kill(pids[0], signal.SIGKILL)
        deadline = time.monotonic() + 5  # until QEMU's last thread is gone (waitable)
        while s.alive and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(StateError, match="QEMU was killed by SIGKILL") as err:
            s.read_memory(0x100000, 4)
        assert "\n" not in str(err.value)
        assert err.value.state is Runstate.EXITED and s.runstate is Runstate.EXITED
        assert Runstate.STOPPED in err.value.required
        assert not s.alive
        # run control answers for a killed QEMU with the error that explains it
        with pytest.raises(QemuError, match="QEMU was killed by SIGKILL"):
            s.cont(timeout=1)
    assert all_gone(pids) and not s.paths.directory.exists()
    assert s.runstate is Runstate.CLOSED
    with pytest.raises(StateError, match="read memory: the session is closed"):
        s.read_memory(0x100000, 4)


def test_qemu_killed_while_running(forever: Path) -> None:
    with Session(LaunchConfig(kernel=forever)) as s:
        pids = session_pids(s)
        timer = threading.Timer(0.3, os.kill, (pids[0], signal.SIGKILL))
        timer.start()
        # cont(timeout=10) would return a timeout stop had it not noticed the kill
        with pytest.raises(QemuError, match="continue: QEMU was killed by SIGKILL"):
            s.cont(timeout=10)
        timer.join()
        assert s.runstate is Runstate.EXITED
    assert all_gone(pids)


def test_gdb_killed(forever: Path) -> None:
    with Session(LaunchConfig(kernel=forever)) as s:
        pids = session_pids(s)
        os.kill(pids[1], signal.SIGKILL)
        with pytest.raises(GdbError, match="gdb"):
            s.cont(timeout=5)
    assert all_gone(pids)


def start_cli(*args: str) -> tuple[subprocess.Popen[str], list[int]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lhvdbg", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 10
    kids: list[int] = []
    while time.monotonic() < deadline and len(kids) < 2:
        kids = children(proc.pid)
        time.sleep(0.02)
    assert len(kids) == 2, "lhvdbg did not start QEMU and gdb"
    time.sleep(0.3)  # let it get into the run
    return proc, kids


def test_sigint_to_lhvdbg(forever: Path) -> None:
    proc, kids = start_cli("run", "--kernel", str(forever), "--timeout", "30", "--quiet")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 130
    # a run stops the guest and prints what it has (issue 11 §6), nothing on stderr
    assert err == "" and " interrupted (Ctrl-C) at " in out.splitlines()[-1]
    assert all_gone(kids)


def test_sigterm_to_lhvdbg(forever: Path) -> None:
    proc, kids = start_cli("run", "--kernel", str(forever), "--timeout", "30", "--quiet")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "Traceback" not in err
    assert all_gone(kids)


def test_sigkill_to_lhvdbg_takes_its_children(forever: Path) -> None:
    proc, kids = start_cli("run", "--kernel", str(forever), "--timeout", "30", "--quiet")
    proc.kill()
    proc.communicate(timeout=10)
    assert all_gone(kids), "QEMU or gdb outlived a SIGKILLed lhvdbg"


def test_timeout_is_one_line(forever: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    result = lhvdbg(
        "snapshot", "--kernel", str(forever), "--at", "kernel_done", "--timeout", "0.5",
        "-o", str(out),
    )  # fmt: skip
    assert result.returncode == 1
    line = one_error_line(result)
    assert line.startswith("lhvdbg: kernel_done not reached within 0.5 s")
    assert not out.exists()


def test_bad_kernels_via_cli(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a kernel\n")
    result = lhvdbg("run", "--kernel", str(text))
    assert result.returncode == 1
    assert one_error_line(result) == f"lhvdbg: {text}: not an ELF file (no ELF magic)"
    result = lhvdbg("run", "--kernel", str(tmp_path / "missing.elf"))
    assert result.returncode == 1
    assert one_error_line(result) == f"lhvdbg: kernel not found: {tmp_path / 'missing.elf'}"


def test_unbuilt_firmware_says_make(tmp_path: Path) -> None:
    env = dict(os.environ, LHVDBG_FIRMWARE_DIR=str(tmp_path))
    result = lhvdbg("run", "--variant", "good", env=env)
    assert result.returncode == 1
    line = one_error_line(result)
    assert "lhv-good.elf is not built" in line and f"run make -C {tmp_path}" in line


def test_missing_tools(tmp_path: Path, forever: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    base = {k: v for k, v in os.environ.items() if k != "LHVDBG_QEMU"}  # PATH decides here
    env = dict(base, PATH=str(empty))
    result = lhvdbg("run", "--kernel", str(forever), env=env)
    assert result.returncode == 1
    assert one_error_line(result).startswith("lhvdbg: qemu-system-x86_64 not found: install")
    only_qemu = tmp_path / "only-qemu"
    only_qemu.mkdir()
    qemu = shutil.which("qemu-system-x86_64")
    assert qemu is not None
    (only_qemu / "qemu-system-x86_64").symlink_to(qemu)
    result = lhvdbg("run", "--kernel", str(forever), env=dict(base, PATH=str(only_qemu)))
    assert result.returncode == 1
    assert one_error_line(result).startswith("lhvdbg: gdb not found: install")


def test_qemu_exiting_at_start_shows_its_stderr(forever: Path) -> None:
    result = lhvdbg("run", "--kernel", str(forever), "--qemu-arg=-no-such-option")
    assert result.returncode == 1
    line = one_error_line(result)
    assert line.startswith("lhvdbg: QEMU exited at start (status 1): ")
    assert "-no-such-option: invalid option" in line


def test_qemu_quitting_under_a_step_is_an_exit(forever: Path) -> None:
    # HMP quit answers before QEMU is gone: the step finds it exiting or exited, and
    # either way reports the exit, not a gdb error
    with Session(LaunchConfig(kernel=forever)) as s:
        s.hmp("quit")
        ev = s.stepi()
        assert (ev.reason, ev.exit_code) == ("exited", 0)
        assert s.runstate is Runstate.EXITED
        assert s.cont(timeout=1).reason == "exited"
