"""diff_snapshots / diff_cpu on real captured snapshots and the Pebbles reference."""

from __future__ import annotations

from pathlib import Path

import pytest

from lhvdbg.state.diff import Difference, diff_cpu, diff_snapshots, in_scope
from lhvdbg.state.references import load_reference
from lhvdbg.x86.hmp import parse_info_registers
from tests.firmware_facts import facts
from tests.unit.recorded_snapshots import recorded

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


AMD64 = facts("amd64")
TSS = AMD64.selectors["TSS"]


def by_path(diffs: list[Difference]) -> dict[str, Difference]:
    return {d.path: d for d in diffs}


def test_same_snapshot_has_no_difference() -> None:
    assert diff_snapshots(recorded("lhv-good-amd64"), recorded("lhv-good-amd64")) == []


def test_good_vs_pic_unremapped_points_at_the_pic() -> None:
    diffs = by_path(
        diff_snapshots(recorded("lhv-good-amd64"), recorded("lhv-pic-unremapped-amd64"))
    )
    assert diffs["pic.master.irq_base"].a == AMD64.pic_bases[0]
    assert diffs["pic.master.irq_base"].b == 0x08  # the BIOS's mapping
    assert diffs["pic.slave.irq_base"].b == 0x70
    assert diffs["pic.master.isr"].b == 0x01
    # same IDT; the pic-unremapped amd64 build never runs ltr (as LHV amd64), so TR's
    # reset state and the never-busied TSS descriptor are the only other table changes
    tables = {p for p in diffs if p.startswith(("gdt", "idt", "tss", "cpu.segments"))}
    assert tables == {
        "cpu.segments.tr.selector",
        "cpu.segments.tr.base",
        "cpu.segments.tr.limit",
        "cpu.segments.tr.flags.type",
        f"gdt[{TSS:#04x}].type",
        "tss",
    }
    assert (diffs["cpu.segments.tr.selector"].a, diffs["cpu.segments.tr.selector"].b) == (TSS, 0)


def test_good_vs_no_ltr_points_at_tr() -> None:
    diffs = by_path(diff_snapshots(recorded("lhv-good-amd64"), recorded("lhv-no-ltr-amd64")))
    assert (diffs["cpu.segments.tr.selector"].a, diffs["cpu.segments.tr.selector"].b) == (TSS, 0)
    assert diffs["cpu.segments.tr.base"].a == 0x111000
    assert diffs["cpu.segments.tr.limit"].b == 0xFFFF
    tr_type = diffs["cpu.segments.tr.flags.type"]
    assert (tr_type.a, tr_type.b) == (0x9, 0xB)
    assert "not a real difference" in tr_type.meaning
    assert "64-bit TSS (available) -> 64-bit TSS (busy)" in tr_type.meaning
    # ltr marked the GDT's TSS descriptor busy; without ltr it stays available
    gdt_type = diffs[f"gdt[{TSS:#04x}].type"]
    assert (gdt_type.a, gdt_type.b) == (0xB, 0x9)
    assert diffs["tss"].b == "TR was never loaded (null selector)"


def test_pebbles_scope_keeps_tables_and_drops_registers() -> None:
    diffs = by_path(diff_snapshots(load_reference("pebbles"), recorded("lhv-good-i386")))
    assert not [p for p in diffs if p.startswith(("cpu.gprs", "cpu.ip", "cpu.flags", "cpu.cr3"))]
    assert "pic.master.imr" not in diffs
    assert "pic.master.irq_base" not in diffs  # both at 0x20
    assert (diffs["cpu.segments.tr.selector"].a, diffs["cpu.segments.tr.selector"].b) == (
        0x08,  # Pebbles' SEGSEL_TSS
        facts("i386").selectors["TSS"],
    )
    assert diffs["cpu.gdtr.base"].a == 0x100900
    assert (diffs["idt[8].offset"].a, diffs["idt[8].offset"].b) == (0x1009B8, 0x1000E0)
    assert not [p for p in diffs if p.startswith("idt[") and not p.startswith("idt[8]")]
    assert (diffs["tss.ss0"].a, diffs["tss.ss0"].b) == (0x18, 0x10)
    assert diffs["tss.esp0"].b == 0x108000
    assert "tss.io_map_base" not in diffs  # 0x68 in both
    # slot 0x8 is Pebbles' TSS but LHV's code segment: decoded through the layouts
    assert diffs["gdt[0x8].type"].meaning.endswith("(32-bit TSS (busy) -> code, execute/read)")


def test_pebbles_vs_amd64_across_layouts() -> None:
    diffs = by_path(diff_snapshots(load_reference("pebbles"), recorded("lhv-good-amd64")))
    assert (diffs["cpu.mode"].a, diffs["cpu.mode"].b) == ("protected", "long")
    assert diffs["tss.rsp0"].a is None and diffs["tss.rsp0"].b == 0x10F000
    assert diffs["tss.ist1"].b == 0x112070
    assert diffs["tss.ss0"].b is None
    # a field one layout lacks and the other holds as zero is not reported
    assert "tss.reserved0" not in diffs and "idt[8].ist" not in diffs


def test_diff_cpu_tcg_vs_kvm() -> None:
    hmp = FIXTURES / "hmp"
    tcg = parse_info_registers((hmp / "registers-long-tcg.txt").read_text())
    kvm = parse_info_registers((hmp / "registers-long-kvm.txt").read_text())
    diffs = by_path(diff_cpu(tcg, kvm))
    assert (diffs["cpu.segments.tr.flags.type"].a, diffs["cpu.segments.tr.flags.type"].b) == (
        0x9,
        0xB,
    )
    assert "not a real difference" in diffs["cpu.segments.tr.flags.type"].meaning
    # KVM shows the accessed bit set on CS and the data segments, TCG does not
    assert diffs["cpu.segments.cs.flags.type"].meaning == (
        "segment or system type (names depend on S) "
        "(code, execute/read -> code, execute/read, accessed)"
    )
    assert (diffs["cpu.flags.af"].a, diffs["cpu.flags.af"].b) == (0, 1)
    assert "cpu.segments.tr.selector" not in diffs
    assert "cpu.cr0.pg" not in diffs


def test_control_registers_through_layouts() -> None:
    hmp = FIXTURES / "hmp"
    real = parse_info_registers((hmp / "registers-real-reset.txt").read_text())
    long = parse_info_registers((hmp / "registers-long-tcg.txt").read_text())
    diffs = by_path(diff_cpu(real, long))
    assert (diffs["cpu.cr0.pe"].a, diffs["cpu.cr0.pe"].b) == (0, 1)
    assert (diffs["cpu.cr0.pg"].a, diffs["cpu.cr0.pg"].b) == (0, 1)
    assert (diffs["cpu.cr0.cd"].a, diffs["cpu.cr0.cd"].b) == (1, 0)
    assert diffs["cpu.cr4.pae"].b == 1
    assert (diffs["cpu.efer.lma"].b, diffs["cpu.efer.lme"].b) == (1, 1)
    assert diffs["cpu.cr3"].b == 0x101000
    assert diffs["cpu.mode"].b == "long"
    # 32-bit names on one side, 64-bit on the other
    assert diffs["cpu.gprs.r15"].a is None
    assert diffs["cpu.gprs.eax"].b is None


@pytest.mark.parametrize(
    ("path", "scope", "expected"),
    [
        ("cpu.gprs.rax", [], True),
        ("gdt[0x8].type", ["gdt"], True),
        ("gdtr.base", ["gdt"], False),
        ("idt[8].offset", ["idt[8]"], True),
        ("idt[80].offset", ["idt[8]"], False),
        ("pic", ["pic.master.irq_base"], True),
        ("pic.master.imr", ["pic.master.irq_base"], False),
        ("cpu.cr0.pe", ["cpu.cr0.pe"], True),
        ("cpu.cr0.pg", ["cpu.cr0.pe"], False),
    ],
)
def test_in_scope(path: str, scope: list[str], expected: bool) -> None:
    assert in_scope(path, scope) is expected


def test_to_dict_writes_hex() -> None:
    d = Difference("pic.master.irq_base", 0x20, 0x08, "vector of IRQ 0")
    assert d.to_dict() == {
        "path": "pic.master.irq_base",
        "a": "0x20",
        "b": "0x8",
        "meaning": "vector of IRQ 0",
    }
