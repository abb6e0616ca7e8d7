"""The HMP parsers against real QEMU 7.2 output (tests/fixtures/hmp, see its README)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lhvdbg.errors import ParseError
from lhvdbg.x86.cpustate import SegmentRegister, TableRegister
from lhvdbg.x86.hmp import cpu_mode, parse_info_lapic, parse_info_pic, parse_info_registers
from tests.firmware_facts import ARCHES, facts

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "hmp"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_bytes().decode()  # keep the \r\n QMP returns


def test_real_mode_at_reset() -> None:
    cpu = parse_info_registers(fixture("registers-real-reset.txt"))
    assert cpu.mode == "real"
    assert cpu.ip == 0xFFF0
    assert cpu.flags == 0x2
    assert cpu.gprs["edx"] == 0x00060FB1
    assert set(cpu.gprs) == {"eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp"}
    assert cpu.segments["cs"] == SegmentRegister(0xF000, 0xFFFF0000, 0xFFFF, 0x9B00)
    assert cpu.tr == SegmentRegister(0, 0, 0xFFFF, 0x8B00)
    assert cpu.ldtr == SegmentRegister(0, 0, 0xFFFF, 0x8200)
    assert cpu.gdtr == TableRegister(0, 0xFFFF)
    assert cpu.cr0 == 0x60000010
    assert cpu.efer == 0
    assert cpu.cpl == 0
    assert cpu.halted is False


def test_real_mode_i386_binary() -> None:
    cpu = parse_info_registers(fixture("registers-real-reset-i386.txt"))
    assert cpu.mode == "real"
    assert cpu.gprs["edx"] == 0x663


def test_protected_mode_seabios() -> None:
    cpu = parse_info_registers(fixture("registers-protected-seabios.txt"))
    assert cpu.mode == "protected"
    assert cpu.ip == 0x12839
    assert cpu.flags == 0x246
    assert cpu.sp == 0x000A1FBC
    assert cpu.segments["cs"] == SegmentRegister(0x08, 0x07F3D000, 0xFFFFFFFF, 0x00CF9F00)
    assert cpu.segments["ds"].selector == 0x10
    assert cpu.gdtr == TableRegister(0x0009CD30, 0x47)
    assert cpu.idtr == TableRegister(0x07F5CFB0, 0x7FF)
    assert cpu.halted is True
    # never loaded: the reset state
    assert cpu.tr == SegmentRegister(0, 0, 0xFFFF, 0x8B00)


@pytest.mark.parametrize(
    "name", ["registers-protected-tcg.txt", "registers-protected-tcg-i386.txt"]
)
def test_protected_mode_after_ltr_tcg(name: str) -> None:
    cpu = parse_info_registers(fixture(name))
    assert cpu.mode == "protected"
    assert cpu.ip == 0x001000F3
    assert cpu.tr == SegmentRegister(0x20, 0x00100140, 0x67, 0x8900)
    assert cpu.tr.type == 0x9  # TCG shows the available type after ltr
    assert cpu.gdtr == TableRegister(0x00100100, 0x27)
    assert cpu.interrupts_enabled


def test_long_mode_tcg() -> None:
    cpu = parse_info_registers(fixture("registers-long-tcg.txt"))
    assert cpu.mode == "long"
    assert cpu.ip == 0x100169
    assert cpu.gprs["r15"] == 0x12345678ABCDEF01
    assert cpu.gprs["r8"] == 0
    assert cpu.sp == 0x107000
    assert len(cpu.gprs) == 16
    assert cpu.segments["cs"] == SegmentRegister(0x18, 0, 0xFFFFFFFF, 0x00AF9A00)
    assert cpu.tr == SegmentRegister(0x20, 0x1001C0, 0x67, 0x8900)
    assert cpu.gdtr == TableRegister(0x100170, 0x2F)
    assert cpu.idtr == TableRegister(0x104000, 0xFFF)
    assert (cpu.cr0, cpu.cr2, cpu.cr3, cpu.cr4) == (0x80000011, 0, 0x101000, 0x20)
    assert cpu.efer == 0x500


def test_long_mode_tr_never_loaded() -> None:
    cpu = parse_info_registers(fixture("registers-long-tr-never-loaded.txt"))
    assert cpu.mode == "long"
    assert cpu.tr == SegmentRegister(0, 0, 0xFFFF, 0x8B00)


def test_long_mode_kvm_busy_tr() -> None:
    cpu = parse_info_registers(fixture("registers-long-kvm.txt"))
    assert cpu.mode == "long"
    assert cpu.tr == SegmentRegister(0x20, 0x1001C0, 0x67, 0x8B00)
    assert cpu.segments["cs"].flags == 0x00A09B00
    assert cpu.flags == 0x212


def test_crlf_and_lf_give_the_same_state() -> None:
    text = fixture("registers-long-tcg.txt")
    assert "\r\n" in text
    assert parse_info_registers(text) == parse_info_registers(text.replace("\r\n", "\n"))


def test_only_the_first_cpu_of_several() -> None:
    one = fixture("registers-long-tcg.txt")
    two = one + one.replace("CPU#0", "CPU#1").replace("R15=12345678abcdef01", "R15=0" * 1)
    assert parse_info_registers(two).gprs["r15"] == 0x12345678ABCDEF01


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        ("TR =", "no TR segment line"),
        ("IDT=", "no IDT= line"),
        ("CR0=", "no CR0="),
        ("RIP=", "no EAX="),  # without RIP the text reads as 32-bit, and has no EAX
    ],
)
def test_missing_lines_are_named(drop: str, message: str) -> None:
    lines = fixture("registers-long-tcg.txt").splitlines()
    text = "\n".join(line for line in lines if not line.startswith(drop))
    with pytest.raises(ParseError, match=message):
        parse_info_registers(text)


def test_not_registers_at_all() -> None:
    with pytest.raises(ParseError) as info:
        parse_info_registers("unknown command: 'info regs'\r\n")
    assert "\n" not in str(info.value)


def test_efer_absent_is_zero() -> None:
    lines = fixture("registers-protected-tcg.txt").splitlines()
    cpu = parse_info_registers("\n".join(x for x in lines if not x.startswith("EFER")))
    assert cpu.efer == 0


@pytest.mark.parametrize(
    ("cr0", "flags", "efer", "cs_flags", "mode"),
    [
        (0x60000010, 0x2, 0, 0x9B00, "real"),
        (0x11, 0x2, 0, 0xCF9A00, "protected"),
        (0x11, 0x20202, 0, 0xCF9A00, "vm86"),
        (0x80000011, 0x2, 0x500, 0xAF9A00, "long"),
        (0x80000011, 0x2, 0x500, 0xCF9A00, "compat"),
    ],
)
def test_cpu_mode(cr0: int, flags: int, efer: int, cs_flags: int, mode: str) -> None:
    assert cpu_mode(cr0, flags, efer, cs_flags) == mode


def test_pic_reset() -> None:
    pic = parse_info_pic(fixture("pic-reset.txt"))
    assert pic.master.irq_base == 0 and pic.slave.irq_base == 0
    assert pic.master.imr == 0


def test_pic_before_remap() -> None:
    pic = parse_info_pic(fixture("pic-seabios.txt"))
    assert (pic.master.irq_base, pic.slave.irq_base) == (0x08, 0x70)
    assert (pic.master.imr, pic.slave.imr) == (0xB8, 0x8E)
    assert pic.slave.extra["elcr"] == 0x0C
    assert pic.master.init_state is None  # QEMU 7.2 does not print it


@pytest.mark.parametrize("name", ["pic-remapped.txt", "pic-remapped-kvm.txt"])
def test_pic_after_remap(name: str) -> None:
    pic = parse_info_pic(fixture(name))
    assert (pic.master.irq_base, pic.slave.irq_base) == (0x20, 0x28)
    assert (pic.master.irr, pic.master.isr, pic.master.imr) == (0x01, 0x01, 0xFE)
    assert pic.slave.imr == 0xFF
    assert pic.master.hprio == 0
    assert pic.master.extra == {"rr_sel": 0, "elcr": 0, "fnm": 0}


def test_pic_missing_slave() -> None:
    text = "\n".join(x for x in fixture("pic-remapped.txt").splitlines() if "pic1" not in x)
    with pytest.raises(ParseError, match="no pic1: line"):
        parse_info_pic(text)


def test_pic_missing_field() -> None:
    text = fixture("pic-remapped.txt").replace("pic0: irr=01 ", "pic0: ")
    with pytest.raises(ParseError, match="pic0 has no irr="):
        parse_info_pic(text)


def test_lapic_reset() -> None:
    lapic = parse_info_lapic(fixture("lapic-reset.txt"))
    assert lapic.svr == 0xFF
    assert not lapic.enabled
    assert lapic.lvt_timer == 0x10000
    assert lapic.lvt == {
        "lint0": 0x10000,
        "lint1": 0x10000,
        "perf": 0x10000,
        "error": 0x10000,
        "thermal": 0x10000,
    }
    assert lapic.extra["dfr"] == 0x0F


def test_lapic_seabios() -> None:
    lapic = parse_info_lapic(fixture("lapic-seabios.txt"))
    assert lapic.enabled
    assert lapic.lvt["lint0"] == 0x8700
    assert lapic.lvt["lint1"] == 0x8400
    assert lapic.extra["icr"] == 0x000C4610


def test_lapic_periodic_timer_in_service() -> None:
    lapic = parse_info_lapic(fixture("lapic-timer.txt"))
    assert lapic.apic_id == 0
    assert lapic.lvt_timer == 0x20022
    assert lapic.timer_divide == 0x3
    assert lapic.timer_initial == 1048576
    assert lapic.timer_current == 253455
    assert lapic.isr == 1 << 34
    assert lapic.irr == 1 << 34
    assert lapic.tmr == 0
    assert (lapic.tpr, lapic.ppr) == (0, 0x20)


def test_lapic_kvm() -> None:
    lapic = parse_info_lapic(fixture("lapic-timer-kvm.txt"))
    assert lapic.lvt_timer == 0x20022
    assert lapic.timer_current == 1048576
    assert lapic.isr == 0


def test_lapic_level_vectors_set_tmr() -> None:
    # QEMU prints "%u%s " per vector with "(level)" when the TMR bit is set
    text = fixture("lapic-timer.txt").replace("ISR\t 34 ", "ISR\t 34 48(level) ")
    lapic = parse_info_lapic(text)
    assert lapic.isr == (1 << 34) | (1 << 48)
    assert lapic.tmr == 1 << 48


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("LVTT\t", "LVTX\t"), "no LVTT"),
        (("Timer\t", "Tim\t"), "no Timer line"),
        (("SPIV\t", "SPI\t"), "no SPIV"),
        (("ISR\t 34", "ISR\t x34"), "ISR entry 'x34'"),
        (("dumping", "showing"), "no 'dumping local APIC state'"),
    ],
)
def test_lapic_errors(edit: tuple[str, str], message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_info_lapic(fixture("lapic-timer.txt").replace(*edit))


# --- the lhvdbg firmware ---------------------------------------------------------------


def test_lhv_good_amd64() -> None:
    """The firmware's numbers (selectors, PIC bases, LAPIC timer vector) from its DWARF;
    addresses as the recorded text has them."""
    sel, vec = facts("amd64").selectors, facts("amd64").vectors
    cpu = parse_info_registers(fixture("registers-lhv-good-amd64.txt"))
    assert cpu.mode == "long"
    assert cpu.segments["cs"] == SegmentRegister(sel["KERNEL_CS"], 0, 0xFFFFFFFF, 0x00AF9A00)
    assert cpu.segments["ss"].selector == sel["KERNEL_DS"]
    assert cpu.tr == SegmentRegister(sel["TSS"], 0x111000, 0x67, 0x8900)
    assert cpu.gdtr == TableRegister(0x103730, 0x3F)
    assert cpu.idtr == TableRegister(0x10F030, 0xFFF)
    pic = parse_info_pic(fixture("pic-lhv-good-amd64.txt"))
    assert (pic.master.irq_base, pic.slave.irq_base) == facts("amd64").pic_bases
    assert pic.master.imr == 0xF8
    lapic = parse_info_lapic(fixture("lapic-lhv-good-amd64.txt"))
    assert lapic.lvt_timer == 0x20000 | vec["LAPIC_TIMER"]  # periodic (bit 17)
    assert lapic.irr == 1 << vec["LAPIC_TIMER"]
    assert lapic.timer_initial == 625000
    assert lapic.irr == 1 << 34 and lapic.isr == 0
    assert lapic.lvt["lint0"] == 0x700


def test_lhv_good_i386_paging() -> None:
    cpu = parse_info_registers(fixture("registers-lhv-good-i386.txt"))
    assert cpu.mode == "protected"
    assert cpu.cr0 == 0x80010011
    assert cpu.cr3 == 0x10B000
    assert cpu.tr == SegmentRegister(facts("i386").selectors["TSS"], 0x109000, 0x67, 0x8900)


@pytest.mark.parametrize("arch", ARCHES)
def test_lhv_pic_unremapped(arch: str) -> None:
    pic = parse_info_pic(fixture(f"pic-lhv-pic-unremapped-{arch}.txt"))
    assert (pic.master.irq_base, pic.slave.irq_base) == (0x08, 0x70)
    assert pic.master.isr == 0x01


def test_lhv_no_ltr_amd64_reset_tr() -> None:
    text = fixture("registers-lhv-no-ltr-amd64.txt")
    assert "TR =0000 0000000000000000 0000ffff 00008b00 DPL=0 TSS64-busy" in text
    cpu = parse_info_registers(text)
    assert cpu.mode == "long"
    assert cpu.tr == SegmentRegister(0, 0, 0xFFFF, 0x8B00)
