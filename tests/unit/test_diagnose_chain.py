"""Chain selection and decoding: error codes, symbols, the last normal point."""

from __future__ import annotations

from pathlib import Path

import pytest

from lhvdbg.diagnose.chain import (
    build_chain,
    decode_error_code,
    describe_gate,
    raised_during_delivery,
)
from lhvdbg.diagnose.events import CpuReset, InterruptEvent, TripleFault
from lhvdbg.diagnose.evidence import read_frame
from lhvdbg.diagnose.intlog import parse_int_log
from lhvdbg.state.snapshot import load_snapshot
from lhvdbg.state.symbols import symbolize
from lhvdbg.state.system import tables_from_reader
from lhvdbg.x86.insn_sites import describe_instruction

INTLOG = Path(__file__).resolve().parent.parent / "fixtures" / "intlog"


def chain_of(name: str):  # type: ignore[no-untyped-def]
    return build_chain(parse_int_log((INTLOG / name).read_text()))


def test_good_run_has_no_chain_and_its_last_event_is_context() -> None:
    chain = chain_of("lhv-good.amd64.log")
    assert chain.steps == () and chain.stop is None
    assert chain.context is not None and chain.context.source == "hardware"
    assert chain.earlier > 30  # 39 events logged, all delivered normally


def test_pic_unremapped_chain_is_the_one_irq_after_the_software_int() -> None:
    chain = chain_of("lhv-pic-unremapped.amd64.log")
    assert [(s.vector, s.source) for s in chain.steps] == [(8, "hardware")]
    assert chain.stop_index == 0
    assert chain.context is not None and chain.context.title == "software int 0x30"


def test_iret_chain_starts_at_the_gp_inside_the_handler() -> None:
    chain = chain_of("lhv-iret-bad-ss.amd64.log")
    assert [(s.vector, s.delivered) for s in chain.steps] == [(13, True), (11, False), (8, True)]
    assert chain.context is not None and chain.context.vector == 0x20
    assert [s.cause_of_next for s in chain.steps] == [True, False, False]
    assert chain.steps[1].folded_into == "#DF" and chain.stop_index == 2
    df = chain.steps[2].event
    assert (df.check_old, df.check_new) == (13, 11)
    assert "#NP raised while delivering #GP" in chain.steps[2].summary()
    assert chain.steps[1].summary() == (
        "#NP (Segment Not Present) raised while delivering #GP, never delivered: folded into "
        "the #DF (QEMU logs no error code for it), at 0x101114"
    )


def test_probe_chain_ends_in_the_triple_fault_and_reset() -> None:
    chain = chain_of("probe-null-idt.reboot.log")
    assert [(s.vector, s.delivered) for s in chain.steps] == [
        (8, True),
        (13, True),
        (13, False),
        (8, True),
        (13, False),
    ]
    assert chain.stop_index == 0  # the first vector 8 (the IRQ) is the stop
    assert [s.folded_into for s in chain.steps] == [None, None, "#DF", None, "triple fault"]
    assert chain.triple_fault is not None and chain.reset


def test_raised_during_delivery() -> None:
    irq = InterruptEvent(0x20, "hardware", None, 0x1000, cs=8)
    same_ip = InterruptEvent(11, "exception", 0x102, 0x1000, cs=8, check_old=-1)
    elsewhere = InterruptEvent(13, "exception", 0, 0x2000, cs=8, check_old=-1)
    nested = InterruptEvent(8, "exception", 0, 0x2000, cs=8, check_old=13)
    assert raised_during_delivery(irq, same_ip)
    assert not raised_during_delivery(irq, elsewhere)
    assert raised_during_delivery(elsewhere, nested)
    assert not raised_during_delivery(same_ip, irq)  # a hardware IRQ is never "raised"


def test_chain_without_vector_8_keeps_the_fault_and_its_context() -> None:
    events = [
        InterruptEvent(0x30, "software", None, 0x1000, line=1),
        InterruptEvent(14, "exception", 0, 0x1100, check_old=-1, cr2=0x5000, line=2),
        CpuReset(line=3),
    ]
    chain = build_chain(events)
    assert [s.vector for s in chain.steps] == [14]
    assert chain.stop is None and chain.context is not None
    assert chain.steps[0].error is not None
    assert chain.steps[0].error.text == "not-present page, read, supervisor, CR2=0x5000"


def test_triple_fault_without_events_is_not_empty() -> None:
    chain = build_chain([TripleFault(line=5, old=8, new=13)])
    assert not chain.empty and chain.steps == ()


def test_selector_error_codes_name_the_descriptor() -> None:
    snapshot = load_snapshot(INTLOG / "session" / "iret-bad-ss.amd64.json")
    tables = tables_from_reader(snapshot.cpu, snapshot.read)
    gdt = decode_error_code(13, 0x18, tables)
    assert gdt is not None and (gdt.table, gdt.index) == ("GDT", 3)
    assert gdt.names is not None and gdt.names.startswith("GDT[0x18]: data, read/write")
    ldt = decode_error_code(13, 0x1C, tables)
    assert ldt is not None and ldt.table == "LDT" and ldt.names is None
    null = decode_error_code(13, 0, tables)
    assert null is not None and null.text.startswith("0: no selector")
    beyond = decode_error_code(13, 0x400, tables)
    assert (
        beyond is not None and beyond.names is not None and "beyond the GDT limit" in beyond.names
    )
    ext = decode_error_code(11, 0x103, tables)
    assert ext is not None and ext.external and ext.index == 0x20 and ext.quirk is None
    assert "EXT" in ext.text
    quirk = decode_error_code(11, 0x202, tables, qemu_long_mode=True)
    assert quirk is not None and quirk.index == 0x20 and quirk.quirk is not None


def test_other_error_code_formats() -> None:
    assert decode_error_code(0x20, 0) is None  # IRQ vectors push nothing
    assert decode_error_code(6, 0) is None  # #UD pushes nothing
    df = decode_error_code(8, 0)
    assert df is not None and df.format == "zero" and "always" in df.text
    bad = decode_error_code(8, 4)
    assert bad is not None and "should be 0" in bad.text
    pf = decode_error_code(14, 0b11111, cr2=0x1234)
    assert pf is not None
    assert pf.text == "protection, write, user, RSVD, ID, CR2=0x1234"


def test_describe_gate_and_symbols() -> None:
    snapshot = load_snapshot(INTLOG / "session" / "timer-gate-missing.amd64.json")
    tables = tables_from_reader(snapshot.cpu, snapshot.read)
    text = describe_gate(tables, 0x20)
    assert text is not None and text.startswith("IDT[0x20]: 64-bit interrupt gate, NOT present")
    assert describe_gate(tables, 0x300) is not None
    assert describe_gate(None, 8) is None
    symbols = {"a": 0x1000, "b": 0x1010}
    assert symbolize(0x1000, symbols) == "a"
    assert symbolize(0x100F, symbols) == "a+0xf"
    assert symbolize(0x1011, symbols) == "b+0x1"
    assert symbolize(0xFFF, symbols) is None
    assert symbolize(0x1010 + 0x20000, symbols) is None
    assert symbolize(0x1000, {}) is None


@pytest.mark.parametrize(
    ("code", "arch", "name"),
    [
        (b"\x48\xcf", "amd64", "iretq"),
        (b"\xcf\x00", "i386", "iret"),
        (b"\xf4\x90", "amd64", "hlt"),
        (b"\xcd\x30", "amd64", "int 0x30"),
        (b"\x0f\x0b", "i386", "ud2"),
        (b"\x41\x55", "amd64", "push"),
        (b"\x8b\x45", "amd64", None),
    ],
)
def test_describe_instruction(code: bytes, arch: str, name: str | None) -> None:
    assert describe_instruction(code, arch) == name  # type: ignore[arg-type]


def test_read_frame_shapes() -> None:
    text = [(0x100000, 0x120000)]
    irq = read_frame([0x102437, 0x08, 0x202, 0x10EFD0, 0x18, 0], kernel_cs=0x08, text=text)
    assert irq.kind == "no-error-code" and irq.rip == 0x102437 and irq.interrupts_were_enabled
    df = read_frame([0, 0x102437, 0x08, 0x2, 0x10EFD0, 0x18], kernel_cs=0x08, text=text)
    assert df.kind == "error-code" and df.error_code == 0 and df.interrupts_were_enabled is False
    outside = read_frame([0x900000, 0x08, 0x202, 0, 0, 0], kernel_cs=0x08, text=text)
    assert outside.kind == "unknown"
    garbage = read_frame([1, 2, 3, 4], kernel_cs=0x08)
    assert garbage.kind == "unknown" and "neither" in garbage.describe(8)


@pytest.mark.parametrize(
    ("code", "quirk"),
    [
        (0x202, True),  # QEMU 7.2 in long mode: vector*16+2 (the gate's byte offset)
        (0x102, False),  # QEMU >= 8.0 (measured with 10.0.2) and a CPU: vector*8+2
    ],
)
def test_long_mode_idt_code_read_against_the_vector_being_delivered(code: int, quirk: bool) -> None:
    """IRQ0 on 0x20 through a not-present gate, in long mode: QEMU 7.2 logs #NP e=0202,
    QEMU 10 e=0102 (qemu-facts). The vector being delivered tells the two apart."""
    snapshot = load_snapshot(INTLOG / "session" / "timer-gate-missing.amd64.json")
    tables = tables_from_reader(snapshot.cpu, snapshot.read)
    assert tables.mode == "ia32e"
    events = [
        InterruptEvent(0x20, "hardware", None, 0x102427, cs=8, line=10),
        InterruptEvent(11, "exception", code, 0x102427, cs=8, check_old=-1, line=11),
    ]
    np = build_chain(events, tables=tables).steps[1]
    assert np.error is not None and (np.error.index, np.error.quirk is not None) == (0x20, quirk)
    assert np.error.names is not None and np.error.names.startswith("IDT[0x20]")
    # Without the delivering vector, an even index in long mode is taken for the old quirk.
    alone = decode_error_code(11, 0x102, tables, qemu_long_mode=True)
    assert alone is not None and alone.index == 0x10
    told = decode_error_code(11, 0x102, tables, qemu_long_mode=True, delivering=0x20)
    assert told is not None and (told.index, told.quirk) == (0x20, None)
