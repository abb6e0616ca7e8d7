"""A long run's status line (lhvdbg.ui.status) and its Ctrl-C (lhvdbg.commands._watch)."""

from __future__ import annotations

import io
import os
import signal
import time

import pytest

from lhvdbg.commands._watch import RunInterrupted, RunWatch
from lhvdbg.ui.status import RunStatus


def test_nothing_when_piped() -> None:
    piped = io.StringIO()
    status = RunStatus(piped, delay=0.0)
    assert status.shown is False
    status.start()
    status.stop()
    assert piped.getvalue() == ""


def test_the_line_waits_half_a_second_then_says_the_phase() -> None:
    status = RunStatus(io.StringIO())
    status.phase = "kernel entered: waiting for vector 8"
    assert status.__rich__().plain == ""  # a short run shows nothing
    status.started = time.monotonic() - 2.04
    text = status.__rich__().plain
    assert text.startswith("lhvdbg: kernel entered: waiting for vector 8 … 2.")
    assert text.endswith(" s")


def test_ctrl_c_becomes_a_request_then_the_usual_ending() -> None:
    before = signal.getsignal(signal.SIGINT)
    with RunWatch(None) as watch:
        watch.phase = "booting (firmware and loader)"
        watch.poll()  # nothing yet
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)  # the handler runs between bytecodes
        assert watch.interrupted
        with pytest.raises(RunInterrupted):
            watch.poll()
        assert watch.note().endswith(
            ", booting (firmware and loader): this report covers what was seen so far"
        )
        with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
    assert signal.getsignal(signal.SIGINT) is before  # put back
