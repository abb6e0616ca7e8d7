"""A stop that is not reached is one line and exit 1, never a silent success: a guest
that never stops by itself (``snapshot --until-stop``) and a timer tick that never comes
(``diff-tss``) on the real firmware in real QEMU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def _lhvdbg(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lhvdbg", "--no-color", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def test_until_stop_on_a_guest_that_never_stops_saves_nothing(
    firmware_built: Path, tmp_path: Path
) -> None:
    out = tmp_path / "never.json"
    done = _lhvdbg(
        "snapshot",
        "--variant",
        "good",
        "--no-debug-exit",
        "--until-stop",
        "--timeout",
        "1",
        "-o",
        str(out),
    )
    assert done.returncode == 1
    assert done.stderr == (
        "lhvdbg: --until-stop: the guest did not stop within 1 s (nothing saved; a longer "
        "--timeout, or --at/--vector)\n"
    )
    assert not out.exists() and done.stdout == ""


def test_diff_tss_whose_tick_never_comes_says_so(firmware_built: Path) -> None:
    done = _lhvdbg(
        "diff-tss",
        "--variant",
        "good",
        "--no-debug-exit",
        "--after-ticks",
        "100000",
        "--timeout",
        "1",
    )
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and done.stdout == ""
    assert lines[0].startswith("lhvdbg: timer tick 100000 never came within 1 s (timeout")
