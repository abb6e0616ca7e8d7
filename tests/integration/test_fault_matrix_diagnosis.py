"""break-on-df on a live subset of the fault matrix, judged like the bench: QEMU's own
``-d int`` log (plain QEMU, read by the bench's reader) against lhvdbg's report — outcome,
chain with folded rows, first cause and its check, fix field."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LIVE = [
    "amd64-pic-master-base-08",
    "amd64-idt-limit-short",
    "amd64-gate-offset-noncanonical",
    "amd64-ist-tss-limit-short",
    "amd64-iret-rip-noncanonical",
    "amd64-user-rsp0-unmapped",
    "i386-lapic-timer-vector-08",
    "i386-task-gate-names-data-segment",
    "i386-user-ss0-not-present",
    "i386-stack-overflow-df-task",
]


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
CASES = {c.name: c for c in fm.load_cases()}


@pytest.mark.parametrize("name", LIVE)
def test_live_case_is_diagnosed_right(firmware_built: Path, name: str) -> None:
    qemu = os.environ.get("LHVDBG_QEMU") or "qemu-system-x86_64"
    result = fm.run_case(CASES[name], qemu)
    assert result.error is None, result.error
    assert result.right, result.problems
