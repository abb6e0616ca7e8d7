"""The real-mode IVT is not an IDT: a protected-mode kernel that never ran ``lidt``
(IDTR still base 0, limit 0x3ff) gets one line, not the IVT's vectors judged as gates."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from lhvdbg.diagnose.tss_diff import diff_tss, tss_needs
from lhvdbg.state.references import load_reference
from lhvdbg.state.snapshot import load_snapshot
from lhvdbg.state.system import tables_from_reader
from lhvdbg.ui.state_views import render_sregs
from lhvdbg.ui.tables import render_idt
from lhvdbg.x86.checks import check_system
from lhvdbg.x86.tables import NO_IDT_YET, idtr_holds_ivt

SNAPSHOTS = Path(__file__).resolve().parents[1] / "fixtures" / "snapshots"
NO_IDT = SNAPSHOTS / "reset-kernel-no-idt-i386.json"


def _text(renderable: object) -> str:
    console = Console(width=120, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_idtr_at_the_ivt_only_outside_real_mode() -> None:
    assert idtr_holds_ivt("protected", 0, 0x3FF)
    assert idtr_holds_ivt("long", 0, 0x3FF)
    assert not idtr_holds_ivt("real", 0, 0x3FF)
    assert not idtr_holds_ivt("protected", 0, 0x7FF)
    assert not idtr_holds_ivt("protected", 0x108010, 0x3FF)


def test_the_recorded_kernel_has_no_idt_and_no_gates() -> None:
    snap = load_snapshot(NO_IDT)
    assert snap.cpu.mode == "protected"
    assert (snap.cpu.idtr.base, snap.cpu.idtr.limit) == (0, 0x3FF)
    tables = tables_from_reader(snap.cpu, snap.read)
    assert tables.idt is not None and tables.idt.real_mode_ivt
    assert tables.idt.present == ()
    # the bytes are still there for what the CPU would read: vector 4 of this IVT
    # decodes as a 32-bit TSS, vector 5 as a call gate
    assert tables.idt.gate(4) is not None and tables.idt.gate(4).kind == "gate"


def test_checks_say_one_line() -> None:
    snap = load_snapshot(NO_IDT)
    tables = tables_from_reader(snap.cpu, snap.read)
    findings = check_system(tables, snap.cpu, pic=snap.pic)
    ids = [f.id for f in findings]
    assert ids == ["tr-never-loaded", "idt-not-loaded"]
    assert findings[1].message.startswith(NO_IDT_YET + ": base 0x0, limit 0x3ff")


def test_views_say_no_idt_yet() -> None:
    snap = load_snapshot(NO_IDT)
    tables = tables_from_reader(snap.cpu, snap.read)
    assert tables.idt is not None
    text = _text(render_idt(tables.idt))
    assert text.splitlines() == ["IDT base 0x0 limit 0x3ff", NO_IDT_YET]
    assert "trap gate" not in text and "call gate" not in text
    assert f"note: {NO_IDT_YET}" in _text(render_sregs(snap.cpu))


def test_diff_tss_judges_no_ist_nor_task_gate() -> None:
    snap = load_snapshot(NO_IDT)
    tables = tables_from_reader(snap.cpu, snap.read)
    needs = tss_needs(tables, snap.cpu)
    assert needs.ist == {} and needs.task_gates == () and not needs.any
    result = diff_tss(snap, load_reference("pebbles"), reference_name="pebbles")
    assert f"{NO_IDT_YET}: no gate names an IST or a task yet" in result.notes
    assert not result.mattering
    assert not any("task gates at" in n or "IST" in n.split(":")[0] for n in result.notes)
