"""``trace --html`` and ``compare --html``: the timeline of a run's events and where two
runs diverge, read back with an HTML parser; self-contained (no URL, no script)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from lhvdbg.diagnose.history import compare_histories
from lhvdbg.state.history import HistoryEvent, build_history
from lhvdbg.ui.html import comparison_page, trace_page
from tests.unit.test_history import GOOD, PIC_INIT, UNREMAPPED, irq, ltr, port
from tests.unit.test_html import assert_self_contained, parse

ROOT = Path(__file__).resolve().parent.parent.parent


def exception(vector: int) -> HistoryEvent:
    return HistoryEvent(
        0,
        "interrupt",
        value=vector,
        rip=0x10356F,
        symbol="kernel_main+0x2af",
        name="exception",
        decoded=f"exception vector {vector:#04x} (error code 0x0)",
    )


TRIPLE = HistoryEvent(0, "fault", name="triple fault", decoded="triple fault: the CPU resets")
# ist-without-tss: the PIC remapped, no ltr, IRQ0 then #SS, #DF and a triple fault
IST_WITHOUT_TSS = build_history(
    [*PIC_INIT, irq(0x20), exception(0x0C), exception(0x08), TRIPLE],
    ended="the guest shut down (triple fault or reset): QEMU is paused",
    qemu_version="7.2.22",
    kernel="firmware/build/amd64/lhv-ist-without-tss.elf",
)


def rows_of(page: str, side: str | None = None) -> list[dict[str, str]]:
    rows = parse(page).find("tr", "history-row")
    wanted = [r for r in rows if side is None or r.attrs["data-side"] == side]
    return [r.attrs | {"text": r.text} for r in wanted]


def test_trace_page_has_one_row_per_event_in_order() -> None:
    page = trace_page(IST_WITHOUT_TSS, accel="tcg")
    assert_self_contained(page)
    rows = rows_of(page)
    assert [int(r["data-seq"]) for r in rows] == [e.seq for e in IST_WITHOUT_TSS.events]
    assert [r["data-kind"] for r in rows][-4:] == ["interrupt"] * 3 + ["fault"]
    assert [int(r["data-vector"]) for r in rows if "data-vector" in r] == [0x20, 0x0C, 0x08]
    icw2 = rows[2]
    assert "out 0x21" in icw2["text"] and "master ICW2: vector base 0x20" in icw2["text"]
    assert "pic_init+0x1c (0x1000)" in icw2["text"]  # symbol and RIP


def test_trace_page_marks_the_first_vector_8_and_the_triple_fault() -> None:
    page = trace_page(IST_WITHOUT_TSS, accel="tcg")
    rows = rows_of(page)
    df = next(r for r in rows if r.get("data-vector") == "8")
    assert "first vector 8" in df["text"] and "#DF" in df["text"]
    assert "problem error" in df["class"]
    assert "triple fault" in rows[-1]["text"] and "problem error" in rows[-1]["class"]
    dom = parse(page)
    assert "triple-fault" in dom.find("div", "verdict")[0].classes
    assert "QEMU 7.2.22" in " ".join(m.text for m in dom.find("p", "meta"))
    assert "accelerator tcg" in dom.find("p", "meta")[0].text


def test_trace_page_shows_a_device_on_an_exception_vector() -> None:
    page = trace_page(UNREMAPPED, accel="tcg")
    rows = rows_of(page)
    assert "device on an exception vector" in rows[0]["text"]
    assert "IRQ0 (master PIC base 0x08, the BIOS's)" in rows[0]["text"]
    dom = parse(page)
    taken = dom.find("tr", "vector-row")
    assert [r.attrs["data-vector"] for r in taken] == ["8"]
    assert "problem" in taken[0].classes and "hardware" in taken[0].text
    assert "ICW1 was never written" in page
    # a timer on its remapped vector is not a problem
    good = rows_of(trace_page(GOOD, accel="tcg"))
    assert not any("problem" in r["class"] for r in good)


def test_comparison_page_names_the_first_divergence_and_marks_both_timelines() -> None:
    comparison = compare_histories(GOOD, UNREMAPPED)
    first = comparison.first_divergence
    assert first is not None
    page = comparison_page(comparison, "good", "pic-unremapped", accel="tcg")
    assert_self_contained(page)
    dom = parse(page)
    assert first.explanation in dom.find("div", "verdict")[0].text
    differences = dom.find("tr", "difference-row")
    assert len(differences) == len(comparison.differences)
    assert differences[0].attrs["data-first"] == "yes"
    assert [d.attrs["data-kind"] for d in differences] == [d.kind for d in comparison.differences]
    good_rows = rows_of(page, "good")
    bad_rows = rows_of(page, "bad")
    assert len(good_rows) == len(GOOD.events) and len(bad_rows) == len(UNREMAPPED.events)
    marked = [int(r["data-seq"]) for r in good_rows if "first divergence" in r["text"]]
    assert marked == [e.seq for e in first.good]  # ICW1-ICW4 of the good build
    assert "first divergence" not in " ".join(r["text"] for r in bad_rows)
    # the bad run's IRQ0 on 0x08 is an extra event of its own and a device on #DF
    assert "device on an exception vector" in bad_rows[0]["text"]


def test_comparison_page_of_identical_runs() -> None:
    page = comparison_page(compare_histories(GOOD, GOOD), "good", "good", accel="tcg")
    dom = parse(page)
    assert "no divergence that matters" in dom.find("div", "verdict")[0].text
    assert dom.find("tr", "difference-row") == []
    assert "no-fault" in dom.find("div", "verdict")[0].classes


def test_text_from_the_run_is_escaped() -> None:
    evil = replace(ltr(), symbol='<script>alert("x")</script>')
    history = build_history([evil, port(0x11, 0x20, "a&b")], kernel="<b>k</b>.elf")
    page = trace_page(history, accel="tcg")
    assert "<script" not in page and "<b>k" not in page
    assert "&lt;script&gt;" in page and "a&amp;b" in page


@pytest.mark.parametrize("command", [["trace"], ["compare", "good", "no-ltr"]])
def test_html_option_fails_before_any_run_on_a_missing_folder(
    command: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "no" / "x.html"
    done = subprocess.run(
        [sys.executable, "-m", "lhvdbg", *command, "--html", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"lhvdbg: --html {out}: no such folder {out.parent}\n"
    assert done.stdout == ""


@pytest.mark.parametrize("command", ["trace", "compare"])
def test_html_option_is_offered(command: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lhvdbg", command, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--html FILE" in done.stdout


def test_the_compare_example_in_docs_is_a_whole_page() -> None:
    page = (ROOT / "docs" / "examples" / "compare-good-ist-without-tss.html").read_text()
    assert_self_contained(page)
    dom = parse(page)
    sides = {r.attrs["data-side"] for r in dom.find("tr", "history-row")}
    assert sides == {"good", "bad"}
    differences = dom.find("tr", "difference-row")
    assert differences and differences[0].attrs["data-first"] == "yes"
    triple = [r for r in dom.find("tr", "history-row") if r.attrs["data-kind"] == "fault"]
    assert len(triple) == 1 and triple[0].attrs["data-side"] == "bad"
