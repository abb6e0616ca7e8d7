"""break-on-df's warm-up (work done while the guest runs) and the cached references."""

from __future__ import annotations

import argparse
import sys

from lhvdbg.commands.break_on_df import SWITCH_INTERVAL, WarmUp, _after_the_run
from lhvdbg.state.references import load_reference


def test_steps_run_in_order_on_their_own_thread_and_stop_at_a_failure() -> None:
    done: list[str] = []

    def fail() -> None:
        done.append("fail")
        raise ValueError("the main thread's own call reports this")

    seen: list[float] = []
    before = sys.getswitchinterval()
    steps = [lambda: seen.append(sys.getswitchinterval()), lambda: done.append("a"), fail]
    warm = WarmUp([*steps, lambda: done.append("never")]).start()
    warm._thread.join(5)
    assert done == ["a", "fail"]
    assert not warm._thread.is_alive() and warm._thread.daemon
    assert seen == [SWITCH_INTERVAL] and sys.getswitchinterval() == before  # put back


def test_the_steps_import_what_the_output_needs_and_read_the_shipped_reference() -> None:
    args = argparse.Namespace(json=False, html=None, reference=None)
    steps = _after_the_run(args, "amd64")
    WarmUp(steps).start()._thread.join(30)
    assert "lhvdbg.ui.report" in sys.modules and "lhvdbg.commands._diagnosis" in sys.modules
    as_json = _after_the_run(argparse.Namespace(json=True, html=None, reference=None), "i386")
    assert len(as_json) == len(steps) - 1  # no text renderer for --json


def test_a_shipped_reference_is_read_once_and_shared() -> None:
    first = load_reference("lhv-amd64")
    assert load_reference("lhv-amd64") is first
    assert load_reference("pebbles") is not first and first.arch == "amd64"
