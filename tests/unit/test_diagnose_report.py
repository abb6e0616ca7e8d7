"""Rendering of reports and TSS diffs (golden plain text), and the report's JSON."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from lhvdbg.diagnose.report import OUTCOMES, VERDICTS, make_report
from lhvdbg.diagnose.tss_diff import diff_tss
from lhvdbg.state.references import load_reference
from lhvdbg.state.snapshot import load_snapshot
from lhvdbg.ui.console import make_console
from lhvdbg.ui.report import render_report, render_tss_diff
from tests.unit.test_diagnose_recorded import recorded

SNAPSHOTS = Path(__file__).resolve().parent.parent / "fixtures" / "snapshots"


def plain(renderable: object) -> str:
    out = io.StringIO()
    make_console(out, color=False, width=100).print(renderable)
    return out.getvalue()


@pytest.mark.parametrize(
    ("variant", "arch"),
    [
        ("pic-unremapped", "amd64"),
        ("timer-gate-missing", "amd64"),
        ("iret-bad-ss", "i386"),
        ("ist-without-tss", "amd64"),
        ("stack-overflow", "amd64"),
        ("good", "amd64"),
    ],
)
def test_report_golden(variant: str, arch: str, golden: Callable[[str, str], None]) -> None:
    text = plain(render_report(make_report(recorded(variant, arch))))
    lines = text.splitlines()
    assert lines[0].startswith("verdict: ")
    assert any(
        line.startswith("amd64, accelerator tcg") or "i386, accelerator tcg" in line
        for line in lines
    )
    golden(f"diagnose/report-{variant}-{arch}.txt", text)


def test_report_puts_the_verdict_first_and_the_harmless_differences_last() -> None:
    text = plain(render_report(make_report(recorded("pic-unremapped", "i386", reference=True))))
    verdict = text.index("verdict: hardware-interrupt-on-vector-8")
    chain = text.index("chain")
    cause = text.index("[pic-not-remapped]")
    fix = text.index("fix: Initialise both 8259 PICs")
    harmless = text.index("differences from pebbles that did not matter")
    assert verdict < chain < cause < fix < harmless
    assert "harmless" in text[harmless:]


def test_tss_diff_golden(golden: Callable[[str, str], None]) -> None:
    actual = load_snapshot(SNAPSHOTS / "lhv-no-ltr-amd64.json")
    diff = diff_tss(actual, load_reference("pebbles"), reference_name="pebbles")
    text = plain(render_tss_diff(diff))
    assert "the CPU needs the TSS now: no" in text
    assert "0 that matter" in text
    golden("diagnose/diff-tss-no-ltr-amd64-pebbles.txt", text)


def test_every_outcome_has_a_verdict() -> None:
    assert set(VERDICTS) == set(OUTCOMES)


def test_report_json_round_trips() -> None:
    data = make_report(recorded("stack-overflow", "i386")).to_json()
    again = json.loads(json.dumps(data))
    assert again == data
    assert again["triple_fault"] is True
    assert again["chain"][0]["cr2"] == again["chain"][0]["sp"]
    assert again["diagnosis"][0]["id"] == "stack-overflow"
    assert again["diagnosis"][0]["check"] == "stack-push"
    assert again["diagnosis"][0]["fix_fields"] == ["stack"]
    # #PF, #PF folded into the #DF, #DF, #PF folded into the triple fault
    assert [(r["vector"], r["delivered"]) for r in again["chain"]] == [
        (14, True),
        (14, False),
        (8, True),
        (14, False),
    ]
    assert [r["error_code"] for r in again["chain"]] == [2, None, 0, None]


def test_folded_raises_are_marked_rows_of_the_timeline() -> None:
    text = plain(render_report(make_report(recorded("timer-gate-missing", "amd64"))))
    chain = text[text.index("chain\n") : text.index("diagnosis (most likely first)")]
    rows = [line for line in chain.splitlines() if line[:1].isdigit()]
    assert [line.split()[:2] for line in rows] == [
        ["1", "IRQ0"],
        ["2", "#NP"],
        ["3", "#NP"],
        ["4", "#DF"],
    ]
    assert "not in the log" in rows[2] and "not in the log" not in rows[1]
    folded = chain[chain.index("\n3 ") : chain.index("\n4 ")]
    assert "(folded)" in folded and "into the #DF" in folded


def test_each_cause_says_what_its_fix_changes_and_which_check_failed() -> None:
    text = plain(render_report(make_report(recorded("pic-unremapped", "amd64"))))
    cause = text[text.index("[pic-not-remapped]") :]
    fix = cause.index("fix: Initialise both 8259 PICs")
    changes = cause.index("changes: pic.master.base (check hardware-on-exception-vector)")
    assert fix < changes < cause.index("reference: ")
