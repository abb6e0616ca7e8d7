"""The ``-d int,cpu_reset`` log parser, on real recorded QEMU 7.2 logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from lhvdbg.diagnose.events import CpuReset, InterruptEvent, TripleFault
from lhvdbg.diagnose.intlog import parse_int_log, scan_int_log
from lhvdbg.errors import ParseError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "intlog"


def read(name: str) -> str:
    return (FIXTURES / name).read_text()


@pytest.mark.parametrize("name", ["probe-null-idt.x86_64.log", "probe-null-idt.i386.log"])
def test_probe_chain_hardware_irq_gp_df_triple(name: str) -> None:
    events = parse_int_log(read(name))
    assert [type(e).__name__ for e in events] == [
        "InterruptEvent",
        "InterruptEvent",
        "InterruptEvent",
        "InterruptEvent",
        "InterruptEvent",
        "TripleFault",
    ]
    irq, gp, gp_folded, df, gp_last, triple = events
    assert isinstance(irq, InterruptEvent)
    assert isinstance(gp, InterruptEvent)
    assert isinstance(gp_folded, InterruptEvent)
    assert isinstance(df, InterruptEvent)
    assert isinstance(gp_last, InterruptEvent)
    assert isinstance(triple, TripleFault)
    assert [e.delivered for e in (irq, gp, gp_folded, df, gp_last)] == [
        True,
        True,
        False,
        True,
        False,
    ]
    # IRQ0 on vector 8: the Servicing line right before it, no error code pushed.
    assert (irq.vector, irq.source, irq.error_code, irq.check_old) == (8, "hardware", None, None)
    assert (irq.rip, irq.cs, irq.sp, irq.ss, irq.cpl) == (0x10001A, 0x08, 0x102810, 0x10, 0)
    assert irq.line == 477 and irq.sequence == 0
    # The gate of vector 8 is all zeros: #GP with the IDT-format error code 8*8+2.
    assert (gp.vector, gp.source, gp.error_code, gp.check_old) == (13, "exception", 0x42, -1)
    # #GP while delivering #GP ('check_exception old: 0xd new 0xd', line 516, no v= line
    # for it): folded into a double fault, error code 0. The log has no error code for the
    # folded #GP; its CS:IP is the one the CPU was delivering at.
    assert (gp_folded.vector, gp_folded.error_code, gp_folded.check_old) == (13, None, 13)
    assert (gp_folded.line, gp_folded.rip, gp_folded.sp) == (516, 0x10001A, 0x102810)
    assert (df.vector, df.source, df.error_code, df.check_old) == (8, "exception", 0, 13)
    assert df.check_new == 13 and df.line == 517
    # #GP while delivering the #DF ('check_exception old: 0x8 new 0xd', line 536): the last
    # raise, folded into the triple fault.
    assert (gp_last.vector, gp_last.error_code, gp_last.check_old, gp_last.line) == (
        13,
        None,
        8,
        536,
    )
    assert (triple.old, triple.new, triple.line) == (8, 13, 537)


def test_register_dump_is_the_state_before_delivery() -> None:
    irq = parse_int_log(read("probe-null-idt.x86_64.log"))[0]
    assert isinstance(irq, InterruptEvent)
    regs = irq.registers
    assert regs is not None
    assert regs.mode == "protected"
    assert regs.flags == 0x206 and regs.interrupts_enabled
    assert regs.gprs["eax"] == 0x2BADB002
    assert regs.idtr.base == 0x101008 and regs.idtr.limit == 0x7FF
    tr = regs.tr
    assert (tr.selector, tr.base, tr.limit, tr.flags) == (0, 0, 0xFFFF, 0x8B00)


def test_bios_lines_before_the_kernel_are_dropped() -> None:
    text = read("probe-null-idt.x86_64.log")
    everything = scan_int_log(text)
    # Two CPU resets at start-up; the BIOS's real-mode IRQ0 leaves a Servicing line with
    # no v= after it, so it yields no event.
    assert [type(e).__name__ for e in everything[:2]] == ["CpuReset", "CpuReset"]
    assert text.count("Servicing hardware INT=0x08") == 2
    interrupts = [e for e in everything if isinstance(e, InterruptEvent)]
    assert [(e.vector, e.delivered) for e in interrupts] == [
        (8, True),
        (13, True),
        (13, False),
        (8, True),
        (13, False),
    ]
    assert not any(isinstance(e, CpuReset) for e in parse_int_log(text))


def test_reset_after_triple_fault_ends_the_run() -> None:
    events = parse_int_log(read("probe-null-idt.reboot.log"))
    assert isinstance(events[-2], TripleFault)
    assert isinstance(events[-1], CpuReset)
    assert events[-1].line == 538
    assert len(events) == 7  # IRQ, #GP, #GP folded, #DF, #GP folded, triple fault, reset
    # After the reset the BIOS logs 'check_exception old: 0xffffffff new 0x6' in real mode
    # (no v= lines there): not a folded raise of the kernel's run, and not in scan's either.
    everything = scan_int_log(read("probe-null-idt.reboot.log"))
    assert not any(isinstance(e, InterruptEvent) and e.line > 538 for e in everything)


def test_software_interrupt_and_page_fault_forms() -> None:
    text = "\n".join(
        [
            "     4: v=30 e=0000 i=1 cpl=0 IP=0008:0000000000100abc pc=0000000000100abc "
            "SP=0010:0000000000107f00 env->regs[R_EAX]=0000000000000000",
            "check_exception old: 0xffffffff new 0xe",
            "     5: v=0e e=0002 i=0 cpl=0 IP=0008:0000000000100b00 pc=0000000000100b00 "
            "SP=0010:0000000000104ff8 CR2=0000000000104ff0",
            "",
        ]
    )
    soft, pf = parse_int_log(text)
    assert isinstance(soft, InterruptEvent) and isinstance(pf, InterruptEvent)
    assert (soft.vector, soft.source, soft.error_code, soft.cr2) == (0x30, "software", None, None)
    assert (pf.vector, pf.source, pf.error_code, pf.cr2) == (14, "exception", 2, 0x104FF0)
    assert pf.registers is None


def test_servicing_line_counts_only_right_before_the_v_line() -> None:
    text = "\n".join(
        [
            "Servicing hardware INT=0x08",
            "SMM: enter",
            "     0: v=08 e=0000 i=0 cpl=0 IP=0008:0010001a pc=0010001a SP=0010:00102810 "
            "env->regs[R_EAX]=2badb002",
        ]
    )
    (event,) = parse_int_log(text)
    assert isinstance(event, InterruptEvent)
    assert (event.source, event.error_code) == ("exception", 0)


def test_truncated_log_keeps_what_is_complete() -> None:
    text = read("probe-null-idt.x86_64.log")
    cut = text.index("     2: v=08") + len("     2: v=08 e=00")
    events = parse_int_log(text[:cut])
    assert [e.vector for e in events if isinstance(e, InterruptEvent)] == [8, 13]
    # Cut inside a register dump: the event stays, without registers.
    cut = text.index("     1: v=0d")
    cut = text.index("ES =", cut)
    last = parse_int_log(text[:cut])[-1]
    assert isinstance(last, InterruptEvent) and last.vector == 13 and last.registers is None


@pytest.mark.parametrize(
    ("name", "first", "total"),
    [
        ("probe-null-idt.i386.log", "Servicing hardware INT=0x08\n     0:", 6),
        ("lhv-stack-overflow.amd64.log", "     0: v=30", 6),  # 2 of them folded raises
    ],
)
def test_every_prefix_parses_and_the_chain_only_grows(name: str, first: str, total: int) -> None:
    text = read(name)
    start = text.index(first)
    counts = []
    for end in [*range(start, len(text), 37), len(text)]:
        counts.append(len(parse_int_log(text[:end])))
    assert counts == sorted(counts)
    assert counts[0] == 0 and counts[-1] == total


def test_malformed_record_in_the_middle_is_a_parse_error() -> None:
    text = read("probe-null-idt.x86_64.log").replace("v=0d e=0042", "v=0d e=zz42")
    with pytest.raises(ParseError, match="line 497"):
        parse_int_log(text)


def test_empty_and_unrelated_text() -> None:
    assert parse_int_log("") == []
    assert parse_int_log("hello\nworld\nCPU Reset (CPU 0)\n") == []
