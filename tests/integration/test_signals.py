"""Ctrl-C and SIGTERM at random moments of a real run: one line (or none), exit 130/143,
no QEMU or gdb left, no private folder left.

Each run gets its own TMPDIR, so the folders lhvdbg makes and the processes it starts
(they inherit TMPDIR) are found afterwards whoever made them. The moments count from the
start of lhvdbg's own code — the instant its entry module catches SIGTERM, seen in
``/proc/PID/status`` (before that the interpreter itself is still starting, and a signal
ends as Python's default does) — to well into the run: the imports and argument parsing
of start-up, QEMU and gdb starting, the guest running. The seed
(``LHVDBG_SIGNAL_SEED``) and each moment are in the test ids, so a failure replays.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import processes

ROOT = Path(__file__).resolve().parents[2]
LHVDBG = Path(sys.executable).parent / "lhvdbg"
pytestmark = pytest.mark.integration

ENDINGS = {signal.SIGINT: (130, "lhvdbg: interrupted"), signal.SIGTERM: (143, "lhvdbg: terminated")}
SEED = int(os.environ.get("LHVDBG_SIGNAL_SEED", "12"))  # another seed: other moments


def _catches_sigterm(pid: int) -> bool:
    """Whether process ``pid`` has a SIGTERM handler (``SigCgt`` of /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


def _moments() -> list[tuple[signal.Signals, float]]:
    """(signal, seconds after spawn) pairs: a few early (start-up), the rest anywhere."""
    rng = random.Random(SEED)
    early = [rng.uniform(0.0, 0.25) for _ in range(4)]
    late = [rng.uniform(0.25, 3.0) for _ in range(4)]
    sigs = [signal.SIGINT, signal.SIGTERM] * 4
    return list(zip(sigs, early + late, strict=True))


def _leftovers(private: Path) -> list[str]:
    """Processes started under ``private`` (their inherited TMPDIR) that still run."""
    marker = f"TMPDIR={private}".encode()
    return [f"{pid}: {cmd}" for pid, cmd, env in processes() if marker in env.split(b"\0")]


@pytest.mark.parametrize(
    ("sig", "moment"), _moments(), ids=[f"{s.name}@{m:.3f}s" for s, m in _moments()]
)
def test_a_signal_at_any_moment_ends_cleanly(
    firmware_built: Path,
    sig: signal.Signals,
    moment: float,
) -> None:
    private = Path(tempfile.mkdtemp(prefix="lhs-", dir="/tmp"))  # short: socket paths
    try:
        _run_and_signal(private, moment, sig)
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _run_and_signal(private: Path, delay: float, sig: signal.Signals) -> None:
    env = {**os.environ, "TMPDIR": str(private), "NO_COLOR": "1"}
    argv = [str(LHVDBG), "run", "--variant", "good", "--no-debug-exit", "--timeout", "20"]
    process = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    while not _catches_sigterm(process.pid) and process.poll() is None:
        time.sleep(0.001)
    time.sleep(delay)
    process.send_signal(sig)
    _, err = process.communicate(timeout=60)
    status, line = ENDINGS[sig]
    assert process.returncode == status, (delay, err)
    assert err in ("", line + "\n"), (delay, err)  # one line, or none; never a traceback
    deadline = time.monotonic() + 5  # children die with their parent (PDEATHSIG): a moment
    while _leftovers(private) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _leftovers(private) == [], delay
    assert sorted(p.name for p in private.iterdir()) == [], delay
