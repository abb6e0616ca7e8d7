"""The real-mode IVT is not an IDT, live: the reset kernel built to never load an IDT
(tests/fixtures/kernels/reset-kernel.S, METHOD=0), stopped where it halts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lhvdbg.cli import main
from lhvdbg.x86.tables import NO_IDT_YET
from tests.kernels import NO_IDT, reset_kernel

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def no_idt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return reset_kernel(tmp_path_factory.mktemp("no-idt"), NO_IDT)


def test_diff_tss_says_no_idt_yet(no_idt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff-tss", "--kernel", str(no_idt), "--at", "halted", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert f"{NO_IDT_YET}: no gate names an IST or a task yet" in data["notes"]
    assert not [d for d in data["differences"] if d["matters"]]
    assert not any("task gates at" in n for n in data["notes"])


def test_break_on_df_findings_say_no_idt_yet(
    no_idt: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["break-on-df", "--kernel", str(no_idt), "--timeout", "1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    ids = [f["id"] for f in data["findings"]]
    assert "idt-not-loaded" in ids
    assert not {"gate-wrong-type", "gate-dpl", "gate-selector-not-code"} & set(ids)
