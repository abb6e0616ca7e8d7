"""The whole diagnosis on evidence recorded from real runs of every firmware variant.

``tests/fixtures/intlog/session`` holds, per variant, the capture at the stop (plus the
instruction bytes and stack words the collector read) and the session's own ``-d int``
log, recorded by ``record_evidence.py``; the runs that ended by themselves (good, no-ltr)
have only their plain-QEMU logs ``lhv-<variant>.<arch>.log``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from lhvdbg.diagnose.evidence import Evidence, StopInfo, evidence_from_snapshot
from lhvdbg.diagnose.intlog import parse_int_log
from lhvdbg.diagnose.report import Report, make_report
from lhvdbg.diagnose.rules import Cause
from lhvdbg.state.references import load_reference
from lhvdbg.state.snapshot import MemoryRegion, load_snapshot
from tests.firmware_facts import ARCH_VARIANTS, ARCHES

INTLOG = Path(__file__).resolve().parent.parent / "fixtures" / "intlog"
SESSION = INTLOG / "session"
STOPS = json.loads((SESSION / "stops.json").read_text())


def recorded(variant: str, arch: str, *, reference: bool = False) -> Evidence:
    """The evidence break-on-df collected for ``variant`` on ``arch`` (TCG)."""
    name = f"{variant}.{arch}"
    stop = STOPS[name]
    info = StopInfo(
        reason=stop["reason"],
        vector=stop["vector"],
        address=stop["address"],
        exit_value=stop["exit_value"],
        detail=stop["detail"],
    )
    text = tuple(tuple(r) for r in stop["text"])
    if not stop["snapshot"]:
        events = parse_int_log((INTLOG / f"lhv-{variant}.{arch}.log").read_text())
        return Evidence(arch=arch, accel="tcg", stop=info, events=tuple(events), int_log=True)  # type: ignore[arg-type]
    snapshot = load_snapshot(SESSION / f"{name}.json")
    events = parse_int_log((SESSION / f"{name}.log").read_text())
    ref = load_reference("pebbles") if reference else None
    physical = [
        MemoryRegion(a, bytes.fromhex(d), "paging entry") for a, d in stop.get("physical", [])
    ]
    return evidence_from_snapshot(
        snapshot,
        events=events,
        int_log=True,
        stop=info,
        physical=physical,
        text=text,  # type: ignore[arg-type]
        reference=ref,
        reference_name="pebbles" if ref is not None else None,
    )


def report_of(variant: str, arch: str, **kwargs: bool) -> Report:
    return make_report(recorded(variant, arch, **kwargs))


EXPECTED = [
    ("good", "amd64", "no-fault", None),
    ("good", "i386", "no-fault", None),
    ("no-ltr", "amd64", "no-fault", None),
    ("no-ltr", "i386", "no-fault", None),
    ("pic-unremapped", "amd64", "hardware-interrupt-on-vector-8", "pic-not-remapped"),
    ("pic-unremapped", "i386", "hardware-interrupt-on-vector-8", "pic-not-remapped"),
    ("timer-gate-missing", "amd64", "double-fault", "gate-not-present"),
    ("timer-gate-missing", "i386", "double-fault", "gate-not-present"),
    ("iret-bad-ss", "amd64", "double-fault", "iret-bad-selector"),
    ("iret-bad-ss", "i386", "double-fault", "iret-bad-selector"),
    ("ist-without-tss", "amd64", "triple-fault", "ist-without-tss"),
    ("stack-overflow", "amd64", "triple-fault", "stack-overflow"),
    ("stack-overflow", "i386", "triple-fault", "stack-overflow"),
]


def test_every_makefile_variant_is_recorded_and_expected() -> None:
    """EXPECTED and the recordings follow firmware/Makefile's VARIANTS_<arch>."""
    assert {(arch, variant) for variant, arch, _, _ in EXPECTED} == set(ARCH_VARIANTS)
    assert set(STOPS) == {f"{variant}.{arch}" for arch, variant in ARCH_VARIANTS}


@pytest.mark.parametrize(("variant", "arch", "outcome", "first"), EXPECTED)
def test_outcome_and_first_cause(variant: str, arch: str, outcome: str, first: str | None) -> None:
    report = report_of(variant, arch)
    assert report.outcome == outcome
    if first is None:
        assert report.diagnosis == ()
    else:
        assert report.diagnosis[0].id == first
        assert report.diagnosis[0].confidence == "high"


@pytest.mark.parametrize("arch", ARCHES)
def test_pic_unremapped_names_irq0_base_8_no_error_code_and_if(arch: str) -> None:
    report = report_of("pic-unremapped", arch)
    (step,) = report.chain.steps
    assert (step.vector, step.source, step.event.error_code) == (8, "hardware", None)
    assert step.irq == ("master", 0)
    cause = report.diagnosis[0]
    assert "IRQ0 (PIT timer) arrived on vector 0x08" in cause.summary
    assert "BIOS base 0x08" in cause.summary
    text = "\n".join(cause.evidence)
    assert "'Servicing hardware INT=0x08' right before 'v=08'" in text
    assert "master irq_base=0x08" in text
    assert "ISR bit 0 set" in text
    assert "the handler's stack has no error code" in text
    assert "EFLAGS.IF was 1" in text
    assert "ICW2" in cause.fix and "0x20" in cause.fix and "EOI" in cause.fix
    assert "pic_init(0x20, 0x28)" in cause.reference
    # The frame agrees with the log: no disagreement about the error code.
    assert not any("error code" in d for d in report.disagreements)
    # Nothing about the TSS is blamed.
    assert all("tss" not in c.id for c in report.diagnosis)


def test_pic_unremapped_frame_is_read_from_the_capture() -> None:
    ev = recorded("pic-unremapped", "amd64")
    assert ev.frame is not None
    assert ev.frame.kind == "no-error-code"
    assert ev.frame.cs == 0x08
    assert ev.frame.rflags is not None and ev.frame.rflags & 0x202 == 0x202
    assert ev.frame.in_kernel_text is True
    step = make_report(ev).chain.steps[0]
    assert ev.frame.rip == step.event.rip  # the log and the stack name the same RIP


def test_timer_gate_missing_decodes_np_and_the_qemu_long_mode_quirk() -> None:
    report = report_of("timer-gate-missing", "amd64")
    irq, np, np_folded, df = report.chain.steps
    assert (irq.vector, irq.source) == (0x20, "hardware") and irq.cause_of_next
    assert (np.vector, np.event.error_code) == (11, 0x202)
    assert (np_folded.vector, np_folded.delivered, np_folded.folded_into) == (11, False, "#DF")
    assert np.error is not None and np.error.table == "IDT" and np.error.index == 0x20
    assert np.error.quirk is not None and "vector*16+2" in np.error.quirk
    assert (df.vector, df.event.error_code, df.event.check_old) == (8, 0, 11)
    cause = report.diagnosis[0]
    assert "vector 0x20" in cause.summary
    assert any("IDT[0x20]: 64-bit interrupt gate, NOT present" in e for e in cause.evidence)
    assert "IRQ0 (PIT timer)" in cause.fix
    assert any("EXT=0" in d for d in report.disagreements)


def test_timer_gate_missing_i386_error_code_has_no_quirk() -> None:
    report = report_of("timer-gate-missing", "i386")
    np = report.chain.steps[1]
    assert np.event.error_code == 0x102
    assert np.error is not None and np.error.index == 0x20 and np.error.quirk is None


@pytest.mark.parametrize(
    ("arch", "role", "selector", "why"),
    [
        ("amd64", "SS", 0x08, "names code, not a writable data segment"),
        ("i386", "CS", 0x10, "names a data segment, not code"),
    ],
)
def test_iret_bad_selector_names_the_frame_slot(
    arch: str, role: str, selector: int, why: str
) -> None:
    report = report_of("iret-bad-ss", arch)
    cause = report.diagnosis[0]
    assert cause.id == "iret-bad-selector"
    assert f"the popped {role} {selector:#06x} {why}" in cause.summary
    assert (cause.check, cause.fix_fields) == (
        f"iret-{role.lower()}-type",
        (f"iret_frame.{role.lower()}",),
    )
    assert report.chain.context is not None and report.chain.context.vector == 0x20
    # The #DF came from #NP while delivering #GP: the missing #GP gate is a second cause.
    second = report.diagnosis[1]
    assert second.id == "gate-not-present" and second.confidence == "medium"
    assert (second.check, second.fix_fields) == ("gate-present", ("idt[0x0d].present",))
    assert "IDT[0x0d] is not present" in second.summary and "#GP" in second.summary


def test_ist_without_tss_reads_ist1_from_the_ivt() -> None:
    report = report_of("ist-without-tss", "amd64")
    rows = [(s.vector, s.delivered) for s in report.chain.steps]
    # IRQ0 (IST1 gate) → #SS → #SS folded into the #DF → #SS folded into the triple fault
    assert rows == [(0x20, True), (12, True), (12, False), (8, True), (12, False)]
    assert report.chain.triple_fault is not None
    cause = report.diagnosis[0]
    assert cause.id == "ist-without-tss"
    assert (cause.check, cause.fix_fields) == ("stack-pointer", ("tr",))
    # TR never loaded: base 0, so IST1 (TSS offset 0x24) is read from the real-mode IVT.
    assert cause.summary.startswith(
        "TSS.ist1 = 0xf000d42ef000e987 is not canonical (TR was never loaded: the slot lies "
        "in the real-mode IVT)"
    )
    assert "ltr" in cause.fix
    # Here the null TR matters, and the report says so.
    assert any(d.field == "tr.selector" and d.matters for d in report.relevant)


@pytest.mark.parametrize("arch", ARCHES)
def test_stack_overflow_cr2_at_rsp_then_df_then_triple(arch: str) -> None:
    report = report_of("stack-overflow", arch)
    pf, pf_folded, df, pf_last = report.chain.steps
    assert pf.vector == 14 and pf.event.cr2 == pf.event.sp
    assert (pf_folded.vector, pf_folded.delivered, pf_folded.folded_into) == (14, False, "#DF")
    assert (pf_last.vector, pf_last.delivered, pf_last.folded_into) == (14, False, "triple fault")
    assert pf.error is not None and pf.error.fields["p"] == 0 and pf.error.fields["wr"] == 1
    assert df.vector == 8 and df.event.check_old == 14
    cause = report.diagnosis[0]
    assert "recurse" in cause.summary
    assert any("triple fault" in e for e in cause.evidence)


@pytest.mark.parametrize(("arch", "levels"), [("amd64", 4), ("i386", 3)])
def test_stack_overflow_walks_cr2_to_the_guard_page(arch: str, levels: int) -> None:
    ev = recorded("stack-overflow", arch)
    assert len(ev.physical) == levels  # one paging entry per level, read at the stop
    report = make_report(ev)
    pf = report.chain.steps[0]
    cr2 = pf.event.cr2
    assert cr2 is not None
    guard = ev.symbols["boot_stack_guard"]
    assert guard <= cr2 < guard + 0x1000 == ev.symbols["boot_stack"]
    (line,) = [e for e in report.diagnosis[0].evidence if e.startswith(f"CR2 {cr2:#x}")]
    assert line.startswith(f"CR2 {cr2:#x} is in a not-present page (CR3 ")
    paging = "4-level" if arch == "amd64" else "PAE"
    assert f"{paging} paging)" in line
    assert f"PTE[{cr2 >> 12 & 0x1FF:#x}] 0x0 P=0" in line
    assert line.endswith(f"boot_stack_guard+{cr2 - guard:#x}: the guard page below boot_stack")
    assert line.count("→") == levels - 1
    # Without the paging entries the rule falls back to what the error code says.
    bare = make_report(replace(ev, physical=()))
    assert not any(e.startswith("CR2 ") for e in bare.diagnosis[0].evidence)
    assert "the page is not present: the guard page below the stack?" in bare.diagnosis[0].evidence


@pytest.mark.parametrize("arch", ARCHES)
def test_stop_rip_is_named_by_its_symbol(arch: str) -> None:
    ev = recorded("pic-unremapped", arch)
    isr_8 = ev.symbols["isr_8"]
    assert ev.snapshot is not None and ev.snapshot.cpu.ip == isr_8
    evidence = make_report(ev).evidence
    assert evidence[0].startswith(f"at the stop: RIP {isr_8:#x} (isr_8), RSP ")
    stripped = make_report(replace(ev, symbols={}, snapshot=replace(ev.snapshot, symbols={})))
    assert stripped.evidence[0].startswith(f"at the stop: RIP {isr_8:#x}, RSP ")


def test_pic_unremapped_against_pebbles_lists_only_harmless_differences() -> None:
    report = report_of("pic-unremapped", "i386", reference=True)
    assert report.reference == "pebbles"
    assert report.irrelevant, "Pebbles and LHV i386 differ in TR selector and base"
    assert {d.field for d in report.irrelevant} >= {"tr.selector", "tr.base"}
    assert report.relevant == ()
    assert report.diagnosis[0].id == "pic-not-remapped"


def test_json_has_the_contract_fields() -> None:
    data = report_of("timer-gate-missing", "amd64").to_json()
    assert data["outcome"] == "double-fault"
    assert data["arch"] == "amd64" and data["accel"] == "tcg"
    assert [
        (c["vector"], c["name"], c["source"], c["error_code"], c["delivered"])
        for c in data["chain"]
    ] == [
        (0x20, "0x20", "hardware", None, True),
        (11, "#NP", "exception", 0x202, True),
        (11, "#NP", "exception", None, False),
        (8, "#DF", "exception", 0, True),
    ]
    assert all(isinstance(c["rip"], int) for c in data["chain"])
    first = data["diagnosis"][0]
    assert set(first) >= {"id", "summary", "evidence", "fix"}
    assert first["id"] == "gate-not-present"
    assert (first["check"], first["fix_fields"]) == ("gate-present", ["idt[0x20].present"])
    json.dumps(data)  # serialisable as is


TSS_CAUSES = {"ist-without-tss", "tss-rsp0-invalid"}


def _blames_tss(cause: Cause) -> bool:
    return cause.id in TSS_CAUSES or "TSS" in cause.summary or "TR " in cause.summary


@pytest.mark.parametrize("reference", ["lhv-amd64", None])
def test_lhv_story_null_tr_is_listed_as_harmless_never_as_the_cause(
    reference: str | None,
) -> None:
    """LHV amd64's real state, recorded: PIC not remapped *and* TR never loaded (the
    pic-unremapped amd64 build never runs ltr). The PIC is the cause; the null TR is a
    difference that did not matter, with or without a reference to weigh it against."""
    ev = recorded("pic-unremapped", "amd64")
    assert ev.snapshot is not None
    tr = ev.snapshot.cpu.tr
    assert (tr.selector, tr.base, tr.limit) == (0, 0, 0xFFFF)  # recorded, not constructed
    if reference is not None:
        ev = replace(ev, reference=load_reference(reference), reference_name=reference)
    report = make_report(ev)
    assert report.outcome == "hardware-interrupt-on-vector-8"
    assert report.diagnosis[0].id == "pic-not-remapped"
    assert report.diagnosis[0].confidence == "high"
    assert not any(_blames_tss(c) for c in report.diagnosis)
    assert report.relevant == ()
    harmless = {d.field: d for d in report.irrelevant}
    assert harmless["tr.selector"].actual == 0 and not harmless["tr.selector"].matters
    explanation = harmless["tr.selector"].explanation
    assert "no gate uses an IST, no task gate, CPL 0 only" in explanation
    data = report.to_json()
    assert data["relevant_differences"] == []
    (sel,) = [d for d in data["irrelevant_differences"] if d["field"] == "tr.selector"]
    assert set(sel) == {"field", "reference", "actual", "explanation", "matters"}
    assert (sel["actual"], sel["matters"]) == (0, False)
    if reference is not None:
        assert "ltr never ran" in explanation and "harmless" in explanation
        assert sel["reference"] == 0x20  # LHV-good's TR
        assert {"tr.selector", "tr.base", "tr.limit"} <= set(harmless)
    else:
        assert sel["reference"] is None
