"""The whole diagnosis on every recorded fault-matrix case, offline.

Each case of ``firmware/fault-cases.toml`` was recorded in real QEMU
(``tests/fixtures/matrix/record.py``): the capture at the stop, the memory the collector
read and QEMU's own ``-d int,cpu_reset`` log. Ground truth is what the case injected and
that log, read by the bench's own small reader (``bench/fault_matrix.py``: ``judge``),
never lhvdbg's parser or output.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from lhvdbg.diagnose.evidence import Evidence, StopInfo, evidence_from_snapshot
from lhvdbg.diagnose.intlog import parse_int_log
from lhvdbg.diagnose.report import Report, make_report
from lhvdbg.state.snapshot import MemoryRegion, load_snapshot

ROOT = Path(__file__).resolve().parents[2]
MATRIX = ROOT / "tests" / "fixtures" / "matrix"
STOPS: dict[str, Any] = json.loads((MATRIX / "stops.json").read_text())


def _bench() -> ModuleType:
    if "fault_matrix" in sys.modules:
        return sys.modules["fault_matrix"]
    spec = importlib.util.spec_from_file_location(
        "fault_matrix", ROOT / "bench" / "fault_matrix.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fault_matrix"] = module
    spec.loader.exec_module(module)
    return module


fm = _bench()
CASES = fm.load_cases()


@cache
def recorded_evidence(name: str) -> Evidence:
    """What break-on-df collected for the case, rebuilt from the recording."""
    stop = STOPS[name]
    info = StopInfo(
        reason=stop["reason"],
        vector=stop["vector"],
        address=stop["address"],
        exit_value=stop["exit_value"],
        detail=stop["detail"],
    )
    events = parse_int_log((MATRIX / f"{name}.log").read_text())
    text = tuple((a, b) for a, b in stop["text"])
    physical = [MemoryRegion(a, bytes.fromhex(d), "paging entry") for a, d in stop["physical"]]
    if not stop["snapshot"]:
        return Evidence(
            arch=stop["arch"], accel="tcg", stop=info, events=tuple(events), int_log=True
        )
    snapshot = load_snapshot(MATRIX / f"{name}.json")
    return evidence_from_snapshot(
        snapshot, events=events, int_log=True, stop=info, physical=physical, text=text
    )


@cache
def report_of(name: str) -> Report:
    return make_report(recorded_evidence(name))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_every_matrix_case_is_diagnosed_right(case: Any) -> None:
    report = report_of(case.name)
    result = fm.judge(case, (MATRIX / f"{case.name}.log").read_text(), report.to_json())
    assert result.right, result.problems


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_no_fix_asks_to_change_a_value_the_state_shows_is_right(case: Any) -> None:
    """Every field a cause names for mending failed a check of the model (or names the
    event's source): nothing the captured state shows right is to be changed."""
    report = report_of(case.name)
    from lhvdbg.diagnose.chain import build_chain
    from lhvdbg.diagnose.explain import explain

    ev = recorded_evidence(case.name)
    pic = ev.snapshot.pic if ev.snapshot is not None else None
    chain = build_chain(ev.events, tables=ev.tables, symbols=ev.symbols, pic=pic)
    failed_fields = {f for failure in explain(chain, ev).failures for f in failure.check.fix_fields}
    for cause in report.diagnosis:
        if cause.check is None or cause.id == "unexplained-chain":
            continue
        assert set(cause.fix_fields) <= failed_fields, (cause.id, cause.fix_fields)
