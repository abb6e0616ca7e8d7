"""The fault matrix as the tests see it: the bench module, the cases, the recordings.

``bench/fault_matrix.py`` (its own log reader and judge: the ground truth), the cases of
``firmware/fault-cases.toml``, and each recorded case's evidence and report, built once
per case (``tests/fixtures/matrix``, recorded by its ``record.py``).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from lhvdbg.diagnose.evidence import Evidence, StopInfo, evidence_from_snapshot
from lhvdbg.diagnose.intlog import parse_int_log
from lhvdbg.diagnose.report import Report, make_report
from lhvdbg.state.snapshot import MemoryRegion, load_snapshot

ROOT = Path(__file__).resolve().parents[1]
MATRIX = ROOT / "tests" / "fixtures" / "matrix"


def _bench() -> ModuleType:
    """``bench/fault_matrix.py`` as a module (loaded once)."""
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
CASES: list[Any] = fm.load_cases()
BY_NAME: dict[str, Any] = {c.name: c for c in CASES}
STOPS: dict[str, Any] = json.loads((MATRIX / "stops.json").read_text())


def recorded_log(name: str) -> str:
    """QEMU's own ``-d int,cpu_reset`` log of the case (the kernel's part)."""
    return (MATRIX / f"{name}.log").read_text()


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
    events = parse_int_log(recorded_log(name))
    if not stop["snapshot"]:
        return Evidence(
            arch=stop["arch"], accel="tcg", stop=info, events=tuple(events), int_log=True
        )
    return evidence_from_snapshot(
        load_snapshot(MATRIX / f"{name}.json"),
        events=events,
        int_log=True,
        stop=info,
        physical=[MemoryRegion(a, bytes.fromhex(d), "paging entry") for a, d in stop["physical"]],
        text=tuple((a, b) for a, b in stop["text"]),
    )


@cache
def report_of(name: str) -> Report:
    """The diagnosis of the recorded case."""
    return make_report(recorded_evidence(name))
