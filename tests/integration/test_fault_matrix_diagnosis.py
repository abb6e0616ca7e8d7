"""break-on-df on a live subset of the fault matrix, judged like the bench: QEMU's own
``-d int`` log (plain QEMU, read by the bench's reader) against lhvdbg's report — outcome,
chain with folded rows, first cause and its check, fix field."""

from __future__ import annotations

import os
from pathlib import Path

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


from tests.matrix import fm  # noqa: E402

CASES = {c.name: c for c in fm.load_cases()}


@pytest.mark.parametrize("name", LIVE)
def test_live_case_is_diagnosed_right(firmware_built: Path, name: str) -> None:
    qemu = os.environ.get("LHVDBG_QEMU") or "qemu-system-x86_64"
    result = fm.run_case(CASES[name], qemu)
    assert result.error is None, result.error
    assert result.right, result.problems
