"""``diagnose --int-log FILE``: a capture from a QEMU lhvdbg did not start (a snapshot, the
gdb plugin) gets its chain from that run's ``-d int`` log."""

from __future__ import annotations

from pathlib import Path

import pytest

from lhvdbg.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SNAPSHOT = FIXTURES / "snapshots" / "lhv-pic-unremapped-amd64.json"
LOG = FIXTURES / "intlog" / "lhv-pic-unremapped.amd64.log"


def _shell(line: str, capsys: pytest.CaptureFixture[str]) -> str:
    main(["--no-color", "shell", "--snapshot", str(SNAPSHOT), "-x", line])
    captured = capsys.readouterr()
    return captured.out + captured.err


def test_the_log_makes_the_chain(capsys: pytest.CaptureFixture[str]) -> None:
    alone = _shell("diagnose", capsys)
    assert "verdict: no-fault" in alone and "interrupt log no" in alone
    with_log = _shell(f"diagnose --int-log {LOG}", capsys)
    assert "verdict: hardware-interrupt-on-vector-8" in with_log
    assert "interrupt log yes" in with_log
    assert "IRQ0 (master PIC) on vector 0x08" in with_log
    assert "[pic-not-remapped]" in with_log


def test_a_file_that_is_no_log_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    out = _shell(f"diagnose --int-log {text}", capsys)
    assert f"error: {text}: no interrupt or exception in it (not a QEMU -d int log?)" in out
    out = _shell(f"diagnose --int-log {tmp_path / 'missing.log'}", capsys)
    assert "error:" in out and "missing.log" in out and "Traceback" not in out
