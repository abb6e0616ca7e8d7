"""System-table checks: each finding id from a real snapshot with one defect added."""

from __future__ import annotations

import dataclasses

from lhvdbg.state.snapshot import Snapshot
from lhvdbg.x86.checks import FINDING_IDS, Finding, check_system, pic_vectors
from lhvdbg.x86.cpustate import PicChip, PicState, SegmentRegister, TableRegister
from lhvdbg.x86.cpuview import is_canonical
from lhvdbg.x86.segments import gate_layout
from lhvdbg.x86.tss import tss64_layout
from tests.unit.recorded_snapshots import recorded, recorded_tables
from tests.unit.snapshot_edit import with_descriptor, with_gate, with_tss

GATE64 = gate_layout("long")
TSS64 = tss64_layout()


def _cpu(snap: Snapshot, **changes: object) -> Snapshot:
    return dataclasses.replace(snap, cpu=dataclasses.replace(snap.cpu, **changes))  # type: ignore[arg-type]


def _with_tr(snap: Snapshot, **changes: int) -> Snapshot:
    tr = dataclasses.replace(snap.cpu.tr, **changes)
    return _cpu(snap, segments={**snap.cpu.segments, "tr": tr})


def _findings(snap: Snapshot, **kw: object) -> list[Finding]:
    tables = recorded_tables(snap)
    return check_system(tables, snap.cpu, pic=snap.pic, **kw)  # type: ignore[arg-type]


def _ids(findings: list[Finding]) -> list[str]:
    return [f.id for f in findings]


def test_healthy_snapshots_have_no_errors() -> None:
    for name in ("long-tcg", "protected-i386"):
        findings = _findings(recorded(name))
        assert [f for f in findings if f.severity != "info"] == [], findings
    assert _ids(_findings(recorded("long-tcg"))) == ["rsp0-invalid"]  # RSP0 = 0, no ring 3


def test_tr_never_loaded_and_ist_without_tr() -> None:
    snap = recorded("long-tr-never-loaded")
    findings = _findings(snap)
    assert _ids(findings) == ["tr-never-loaded"]
    assert findings[0].entry == "tr" and findings[0].severity == "warning"
    assert "selector 0x0000, base 0x0, limit 0xffff" in findings[0].message
    findings = _findings(with_gate(snap, 8, ist=1))
    assert findings[0].id == "ist-without-tr" and findings[0].severity == "error"
    assert findings[0].entry == "idt[0x08]" and "IST1" in findings[0].message


def test_ist_limit_and_pointer() -> None:
    snap = with_gate(recorded("long-tcg"), 8, ist=2)
    findings = _findings(snap)
    bad = [f for f in findings if f.id == "ist-pointer-invalid"]
    assert (
        len(bad) == 1 and bad[0].entry == "tss.ist2" and "IST2 (used by #DF) is 0" in bad[0].message
    )
    short = _findings(_with_tr(snap, limit=0x2B))
    lim = [f for f in short if f.id == "tss-limit-too-small" and f.severity == "error"]
    assert lim[0].message == "#DF uses IST2 at TSS offset 0x2c..0x33 but the TR limit is 0x2b"
    fixed = with_tss(snap, ist2=0x0000800000000000)
    msgs = [f.message for f in _findings(fixed) if f.id == "ist-pointer-invalid"]
    assert msgs == ["IST2 (used by #DF) 0x800000000000 is not canonical"]
    fixed = with_tss(snap, ist2=0x200008)
    bad = [f for f in _findings(fixed) if f.id == "ist-pointer-invalid"]
    assert [(f.severity, f.message) for f in bad] == [
        ("warning", "IST2 (used by #DF) 0x200008 is not 16-byte aligned")
    ]


def test_rsp0_matters_once_there_is_user_code() -> None:
    snap = recorded("long-tcg")
    snap = with_descriptor(snap, 0x10, type=0xA, dpl=3, l=1, db=0)  # data -> 64-bit user code
    rsp0 = [f for f in _findings(snap) if f.id == "rsp0-invalid"]
    assert [(f.severity, f.entry) for f in rsp0] == [("error", "tss.rsp0")]
    assert "needed for interrupts from CPL 3" in rsp0[0].message


def test_gate_problems_are_grouped() -> None:
    snap = recorded("long-tcg")
    for v in range(0x20, 0x30):
        snap = with_gate(snap, v, selector=0x10)  # the data segment
    snap = with_gate(snap, 0x30, selector=0x08)  # 32-bit code segment in long mode
    snap = with_gate(snap, 0x31, type=0x9)
    snap = with_gate(snap, 0x32, selector=0x80)
    findings = {f.entry: f for f in _findings(snap)}
    grouped = findings["idt[0x20-0x2f]"]
    assert grouped.id == "gate-selector-not-code" and grouped.severity == "error"
    # the delivery model's words: the check that fails (cs-type, cs-long) and its value
    assert (
        grouped.message == "16 gates 0x20..0x2f: GDT[0x0010] is a data segment, not a code segment"
    )
    assert findings["idt[0x30]"].message.endswith("is not a 64-bit code segment (L=0, D=1)")
    assert findings["idt[0x31]"].id == "gate-wrong-type"
    assert findings["idt[0x32]"].id == "descriptor-beyond-gdt-limit"


def test_gate_not_present_and_idt_limit_short_use_pic_vectors() -> None:
    snap = with_gate(recorded("long-tcg"), 0x20, present=0)
    f = [x for x in _findings(snap) if x.id == "gate-not-present"]
    assert [(x.entry, x.severity) for x in f] == [("idt[0x20]", "error")]
    assert "(vector 0x20, IRQ0)" in f[0].message
    short = _findings(_cpu(recorded("long-tcg"), idtr=TableRegister(0x104000, 0xFF)))
    lim = {x.entry: x for x in short if x.id == "idt-limit-short"}
    assert lim["idt[0x20]"].severity == "error"  # IRQ0, unmasked
    assert lim["idt[0x10]"].severity == "warning"  # #MF
    assert lim["idt[0x10]"].message == (
        "IDT limit 0xff does not cover vector 0x10 (#MF), which needs 0x10f"
    )
    assert short[0].severity == "error"  # errors sort first
    # The BIOS PIC mapping puts IRQ0 on vector 8 (the LHV bug): vector 8 counts as IRQ0.
    bios = PicState(PicChip(0, 0xFE, 0, 0x08), PicChip(0, 0xFF, 0, 0x70))
    assert pic_vectors(bios) == {8: "IRQ0"}


def test_tr_descriptor_problems() -> None:
    snap = recorded("long-tcg")
    wrong = _findings(_with_tr(snap, selector=0x08))
    assert [f.id for f in wrong if f.severity == "error"] == ["tss-descriptor-wrong-type"]
    beyond = _findings(_with_tr(snap, selector=0x28))
    assert beyond[0].id == "descriptor-beyond-gdt-limit" and beyond[0].entry == "tr"
    moved = _findings(_with_tr(snap, base=0x200000))
    assert "tr-cache-differs" in _ids(moved)


def test_cs_beyond_gdt_limit_and_handler_dpl() -> None:
    snap = recorded("long-tcg")
    cs = SegmentRegister(0x40, 0, 0xFFFFFFFF, snap.cpu.segments["cs"].flags)
    f = _findings(_cpu(snap, segments={**snap.cpu.segments, "cs": cs}))
    assert any(x.id == "descriptor-beyond-gdt-limit" and x.entry == "cs" for x in f)
    f = _findings(with_descriptor(snap, 0x18, dpl=3))  # the gates' code segment at DPL 3
    dpl = [x for x in f if x.id == "gate-dpl"]
    assert dpl[0].entry == "idt[0x00-0xff]" and "DPL 3 > CPL 0" in dpl[0].message


def test_unavailable_tables_become_info_and_ids_are_known() -> None:
    snap = recorded("long-tcg")
    bare = dataclasses.replace(snap, memory=tuple(r for r in snap.memory if r.label != "idt"))
    f = _findings(bare)
    assert ("table-unavailable", "info", "idt") in [(x.id, x.severity, x.entry) for x in f]
    assert check_system(recorded_tables(snap), _cpu(snap, cr0=0x10).cpu) == []
    assert set(_ids(f)) <= set(FINDING_IDS)


def test_is_canonical() -> None:
    assert is_canonical(0x00007FFFFFFFFFFF) and is_canonical(0xFFFF800000000000)
    assert not is_canonical(0x0000800000000000)
