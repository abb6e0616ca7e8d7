"""SIGINT/SIGTERM held back while a session's private folder appears, and released where
its clean-up covers it (``lhvdbg.signals``, ``SessionPaths.create_holding_signals``)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from lhvdbg.machine.workdir import PREFIX, SessionPaths
from lhvdbg.signals import hold_exit_signals, release_signals


@pytest.fixture
def seen() -> Iterator[list[int]]:
    got: list[int] = []
    old = signal.signal(signal.SIGTERM, lambda number, frame: got.append(number))
    try:
        yield got
    finally:
        signal.signal(signal.SIGTERM, old)


def test_a_held_sigterm_arrives_only_when_released(seen: list[int]) -> None:
    held = hold_exit_signals()
    os.kill(os.getpid(), signal.SIGTERM)
    assert seen == []  # pending, not delivered
    assert signal.SIGTERM in signal.sigpending()
    release_signals(held)
    assert seen == [signal.SIGTERM]
    assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_the_folder_is_made_while_signals_are_held(
    seen: list[int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    paths, held = SessionPaths.create_holding_signals()
    try:
        assert paths.directory.parent == tmp_path and paths.directory.name.startswith(PREFIX)
        assert {signal.SIGINT, signal.SIGTERM} <= signal.pthread_sigmask(signal.SIG_BLOCK, [])
    finally:
        release_signals(held)
    assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_a_failed_folder_releases_the_signals(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail() -> SessionPaths:
        raise OSError("no space left on device")

    monkeypatch.setattr(SessionPaths, "create", staticmethod(fail))
    with pytest.raises(OSError, match="no space"):
        SessionPaths.create_holding_signals()
    assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
