"""The HTML pages (``--html FILE``): structure read back with an HTML parser, on the recorded
break-on-df evidence, snapshots and references; self-contained (no URL, no script)."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lhvdbg.diagnose.report import make_report
from lhvdbg.diagnose.tss_diff import diff_tss
from lhvdbg.state.references import load_reference
from lhvdbg.ui.html import report_page, snapshot_page, tss_diff_page
from tests.unit.recorded_snapshots import SNAPSHOTS, recorded
from tests.unit.test_diagnose_recorded import recorded as recorded_evidence

ROOT = Path(__file__).resolve().parent.parent.parent


class Element:
    """One start tag: name, attributes, and the text inside it (all descendants)."""

    def __init__(self, tag: str, attrs: dict[str, str]) -> None:
        self.tag = tag
        self.attrs = attrs
        self.text = ""

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


class Collector(HTMLParser):
    """Every element of a page, in order, with its text."""

    VOID = frozenset({"meta", "br", "rect", "circle", "path", "img", "input", "link"})

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[Element] = []
        self._open: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        if tag in ("td", "th", "li", "br"):
            for outer in self._open:  # cells read apart: "tr.selector 0x20 0x0"
                outer.text += " "
        self.elements.append(element)
        if tag not in self.VOID:
            self._open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop().tag == tag:
                break

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data

    def find(self, tag: str, cls: str) -> list[Element]:
        return [e for e in self.elements if e.tag == tag and cls in e.classes]


def parse(page: str) -> Collector:
    collector = Collector()
    collector.feed(page)
    collector.close()
    return collector


def report_html(variant: str, arch: str) -> str:
    ev = recorded_evidence(variant, arch, reference=True)
    report = make_report(ev)
    return report_page(report, snapshot=ev.snapshot, tables=ev.tables, reference=ev.reference)


def assert_self_contained(page: str) -> None:
    """No URL, nothing to fetch, no script; a CSP that forbids fetching anyway."""
    assert re.search(r"(?i)\b(?:https?|ftp|wss?)://", page) is None
    assert re.search(r"(?i)\s(?:src|href|srcset|action|xlink:href)\s*=", page) is None
    assert re.search(r"(?i)url\(|@import|<script|<link|<iframe|<object|<embed", page) is None
    assert "default-src 'none'" in page


@pytest.mark.parametrize(
    ("variant", "arch"),
    [
        ("pic-unremapped", "amd64"),
        ("timer-gate-missing", "amd64"),
        ("ist-without-tss", "amd64"),
        ("iret-bad-ss", "i386"),
        ("stack-overflow", "amd64"),
    ],
)
def test_report_pages_hold_the_chain_and_the_vector_map(variant: str, arch: str) -> None:
    ev = recorded_evidence(variant, arch, reference=True)
    report = make_report(ev)
    page = report_page(report, snapshot=ev.snapshot, tables=ev.tables, reference=ev.reference)
    assert_self_contained(page)
    dom = parse(page)
    data = report.to_json()
    rows = dom.find("tr", "chain-row")
    expected = len(data["chain"]) + (data["context"] is not None) + data["triple_fault"]
    assert len(rows) == expected
    steps = [r for r in rows if r.attrs["data-kind"] not in ("context", "triple")]
    assert [int(r.attrs["data-vector"]) for r in steps] == [s["vector"] for s in data["chain"]]
    folded = [r for r in rows if r.attrs["data-kind"] == "folded"]
    assert len(folded) == sum(1 for s in data["chain"] if s.get("delivered") is False)
    assert all("folded into the next" in r.text for r in folded)
    cells = dom.find("g", "vec")
    assert [int(c.attrs["data-vector"]) for c in cells] == list(range(256))
    assert report.verdict in page.replace("&#x27;", "'")
    assert "QEMU" in page and "7.2.22" in page and "tcg" in page


def test_first_vector_8_and_triple_fault_are_marked() -> None:
    dom = parse(report_html("ist-without-tss", "amd64"))
    kinds = [r.attrs["data-kind"] for r in dom.find("tr", "chain-row")]
    assert kinds == ["context", "delivered", "delivered", "folded", "stop", "folded", "triple"]
    stop = dom.find("tr", "stop")[0]
    assert stop.attrs["data-vector"] == "8" and "first vector 8" in stop.text
    assert "triple fault" in dom.find("tr", "triple")[0].text
    boxes = [g.attrs["class"] for g in dom.elements if g.tag == "g" and "event" in g.classes]
    assert boxes == [
        "event context",
        "event delivered",
        "event delivered",
        "event folded",
        "event stop",
        "event folded",
        "event triple",
    ]


def test_error_codes_are_decoded_in_the_chain() -> None:
    dom = parse(report_html("iret-bad-ss", "i386"))
    first = dom.find("tr", "chain-row")[1]
    assert "0x10: GDT selector 0x10 (index 2)" in first.text
    assert "isr_return+0x4" in first.text


def test_pic_base_inside_the_exception_range_is_seen_at_a_glance() -> None:
    dom = parse(report_html("pic-unremapped", "amd64"))
    cells = {int(c.attrs["data-vector"]): c for c in dom.find("g", "vec")}
    for vector in (0x08, 0x09, *range(0x0B, 0x10)):  # the master PIC at its BIOS base 0x08
        assert {"exception", "pic", "conflict"} <= cells[vector].classes
    assert "pic" not in cells[0x0A].classes  # IRQ2 is the cascade: never delivered
    for vector in range(0x70, 0x78):  # the slave at 0x70: not an exception vector
        assert "slave" in cells[vector].classes and "conflict" not in cells[vector].classes
    assert "exception" not in cells[0x20].classes
    assert "in-chain" in cells[8].classes
    notes = dom.find("ul", "map-notes")[0].text
    assert "PIC master delivers on 0x08-0x0f" in notes
    assert "inside the CPU exception range 0x00-0x1f" in notes


def test_gate_not_present_is_highlighted_with_why() -> None:
    dom = parse(report_html("timer-gate-missing", "amd64"))
    cells = {int(c.attrs["data-vector"]): c for c in dom.find("g", "vec")}
    assert {"absent", "problem", "pic"} <= cells[0x20].classes
    assert "present" in cells[0x08].classes
    row = next(r for r in dom.find("tr", "idt-row") if r.attrs["data-vector"] == "32")
    assert {"problem", "error"} <= row.classes
    assert "gate-not-present" in row.text
    assert "cause timer-gate-missing" in row.text or "the fix changes idt[0x20].present" in row.text


def test_causes_show_evidence_fix_and_fix_fields() -> None:
    dom = parse(report_html("timer-gate-missing", "amd64"))
    causes = dom.find("li", "cause")
    assert causes, "no cause listed"
    top = causes[0]
    assert "fix:" in top.text
    assert "idt[0x20].present" in top.text
    assert (
        top.attrs["data-cause"]
        == make_report(recorded_evidence("timer-gate-missing", "amd64")).diagnosis[0].id
    )


def test_tss_beside_the_reference_marks_what_matters() -> None:
    dom = parse(report_html("ist-without-tss", "amd64"))
    rows = {r.text.split()[0]: r for r in dom.find("tr", "tss-row")}
    assert {"problem", "matters"} <= rows["tr.selector"].classes
    assert "matters" in rows["tr.selector"].text
    assert "matters" in rows["tss.ist1"].text
    assert "tss.esp0" in rows  # the reference's (32-bit Pebbles) TSS fields are listed beside


def test_beyond_the_idt_limit() -> None:
    snapshot = recorded("lhv-good-amd64")
    cpu = replace(snapshot.cpu, idtr=replace(snapshot.cpu.idtr, limit=0xFF))  # 16 gates
    dom = parse(snapshot_page(replace(snapshot, cpu=cpu), label="short idt"))
    cells = {int(c.attrs["data-vector"]): c for c in dom.find("g", "vec")}
    assert "present" in cells[0x0F].classes
    assert all("beyond" in cells[v].classes for v in range(0x10, 0x100))
    assert "vectors 0x00-0x0f inside the limit" in dom.find("ul", "map-notes")[0].text


def test_diff_tss_page() -> None:
    actual = recorded("lhv-no-ltr-amd64")
    reference = load_reference("lhv-amd64")
    diff = diff_tss(actual, reference, reference_name="lhv-amd64")
    page = tss_diff_page(diff, snapshot=actual, reference=reference)
    assert_self_contained(page)
    dom = parse(page)
    rows = {r.text.split()[0]: r for r in dom.find("tr", "tss-row")}
    assert "harmless" in rows["tr.selector"].text
    assert "0x20" in rows["tr.selector"].text  # the reference's selector beside ours
    assert len(dom.find("g", "vec")) == 256
    assert "the CPU needs the TSS now: no" in page


def test_snapshot_page_for_a_reference_and_gdt_rows() -> None:
    page = snapshot_page(load_reference("pebbles"), label="pebbles")
    assert_self_contained(page)
    dom = parse(page)
    selectors = [int(r.attrs["data-selector"]) for r in dom.find("tr", "gdt-row")]
    assert selectors[:2] == [0, 8]
    assert len(dom.find("tr", "idt-row")) > 0


def test_text_from_the_machine_is_escaped() -> None:
    ev = recorded_evidence("pic-unremapped", "amd64")
    report = replace(make_report(ev), kernel='/tmp/<script>alert("x")</script>.elf')
    page = report_page(report, snapshot=ev.snapshot, tables=ev.tables)
    assert "<script" not in page
    assert "&lt;script&gt;" in page


def test_show_writes_the_page_and_says_so(tmp_path: Path) -> None:
    out = tmp_path / "pebbles.html"
    done = subprocess.run(
        [sys.executable, "-m", "lhvdbg", "show", "pebbles", "gdt", "--html", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == f"lhvdbg: wrote {out}\n"
    assert "GDT" in done.stdout  # the text view still prints
    assert len(parse(out.read_text()).find("g", "vec")) == 256


def test_diff_tss_snapshot_html_with_json(tmp_path: Path) -> None:
    out = tmp_path / "d.html"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "lhvdbg",
            "diff-tss",
            "--snapshot",
            str(SNAPSHOTS / "lhv-no-ltr-amd64.json"),
            "--json",
            "--html",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.lstrip().startswith("{")  # stdout keeps the JSON alone
    assert "tss-row" in out.read_text()


def test_html_into_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lhvdbg", "show", "pebbles", "--html", str(tmp_path / "no/x.html")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "no such folder" in done.stderr


@pytest.mark.parametrize("name", ["break-on-df-ist-without-tss", "break-on-df-pic-unremapped"])
def test_the_examples_in_docs_are_whole_pages(name: str) -> None:
    page = (ROOT / "docs" / "examples" / f"{name}.html").read_text()
    assert_self_contained(page)
    dom = parse(page)
    assert len(dom.find("g", "vec")) == 256
    kinds = [r.attrs["data-kind"] for r in dom.find("tr", "chain-row")]
    assert "stop" in kinds
    assert ("triple" in kinds) == name.endswith("ist-without-tss")


MODEL = {
    "first_failure": {
        "role": "delivery",
        "event_vector": 0x20,
        "id": "gate-present",
        "ok": False,
        "text": "IDT[0x20] is not present (P=0)",
        "sdm": "Vol. 2A INT n",
        "fix_fields": ["idt[0x20].present"],
        "raises": {"vector": 11, "error_code": 0x103, "cr2": None},
    },
    "accounts": [
        {
            "vector": 0x20,
            "source": "hardware",
            "log_line": 62,
            "origin": None,
            "agreement": "confirmed",
            "notes": ["a note <b>escaped</b>"],
            "deliveries": [
                {
                    "vector": 0x20,
                    "kind": "hardware",
                    "ext": True,
                    "mode": "ia32e",
                    "stack": None,
                    "new_sp": None,
                    "checks": [
                        {"id": "idt-limit", "ok": True, "text": "IDT limit 0xfff covers it"},
                        {
                            "id": "gate-present",
                            "ok": False,
                            "text": "IDT[0x20] is not present (P=0)",
                            "sdm": "Vol. 2A INT n",
                            "fix_fields": ["idt[0x20].present"],
                            "raises": {"vector": 11, "error_code": 0x103, "cr2": None},
                        },
                    ],
                }
            ],
        }
    ],
}


def test_what_the_cpu_checked_from_the_model() -> None:
    from lhvdbg.ui.html.model import failing_fix_fields, model_section

    html = model_section(MODEL)
    dom = parse(html)
    checks = dom.find("tr", "check")
    assert [c.attrs["data-check"] for c in checks] == ["idt-limit", "gate-present"]
    assert "ok" in checks[0].classes and {"problem", "error"} <= checks[1].classes
    assert "#NP(0x103)" in checks[1].text
    assert "first failing check: gate-present" in " ".join(
        dom.find("div", "first-failure")[0].text.split()
    )
    assert "agrees with QEMU" in html and "&lt;b&gt;escaped&lt;/b&gt;" in html
    assert failing_fix_fields(MODEL) == [
        ("idt[0x20].present", "check gate-present failed: IDT[0x20] is not present (P=0)")
    ]


@pytest.mark.parametrize("model", [None, {}, {"accounts": "nonsense"}, [1, 2]])
def test_no_or_odd_model_renders_nothing(model: object) -> None:
    from lhvdbg.ui.html.model import failing_fix_fields, model_section

    assert model_section(model) == ""
    assert failing_fix_fields(model) == []
