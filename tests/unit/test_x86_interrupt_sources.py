"""The one vector map: which 8259 line or LAPIC entry delivers on which vector.

On the PIC/LAPIC state recorded at the vector-8 handler of the firmware (``info pic``,
``info lapic`` of QEMU 7.2), and on states changed with ``dataclasses.replace``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from lhvdbg.state.snapshot import load_snapshot
from lhvdbg.x86.checks import pic_vectors
from lhvdbg.x86.cpustate import LapicState, PicState
from lhvdbg.x86.interrupt_sources import (
    attribute,
    interrupt_sources,
    ioapic_entries,
    vector_map,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SESSION = FIXTURES / "intlog" / "session"
MATRIX = FIXTURES / "matrix"


def recorded(name: str) -> tuple[PicState, LapicState]:
    snapshot = load_snapshot(SESSION / f"{name}.json")
    assert snapshot.pic is not None and snapshot.lapic is not None
    return snapshot.pic, snapshot.lapic


def test_remapped_pic_and_the_lapic_timer_on_0x22_is_not_irq2() -> None:
    """Master at 0x20 (IMR 0xf8: IRQ0-2 open), slave at 0x28 (all masked), LAPIC enabled
    with its timer on 0x22 — where the master's IRQ2 would be, but IRQ2 is the cascade."""
    pic, lapic = recorded("timer-gate-missing.amd64")
    assert (pic.master.irq_base, pic.master.imr, lapic.lvt_timer) == (0x20, 0xF8, 0x20022)
    timer = attribute(0x22, pic, lapic)
    assert timer is not None
    assert (timer.source, timer.line, timer.device, timer.masked) == (
        "lapic-lvt-timer",
        None,
        "LAPIC timer",
        False,
    )
    assert timer.label == "LAPIC timer" and timer.irq is None
    pit = attribute(0x20, pic, lapic)
    assert pit is not None and (pit.source, pit.line, pit.irq, pit.label) == (
        "pic-master",
        0,
        0,
        "IRQ0 (PIT timer)",
    )
    rtc = attribute(0x28, pic, lapic)
    assert rtc is not None and (rtc.source, rtc.irq, rtc.masked) == ("pic-slave", 8, True)
    assert attribute(0x40, pic, lapic) is None


def test_the_map_by_vector_leaves_the_cascade_out_and_keeps_every_other_line() -> None:
    pic, lapic = recorded("timer-gate-missing.amd64")
    sources = vector_map(pic, lapic)
    pic_vectors_seen = [v for v, s in sources.items() if s[0].chip is not None]
    assert pic_vectors_seen == [0x20, 0x21, *range(0x23, 0x30)]  # 15 lines, no IRQ2
    assert [s.source for s in sources[0x22]] == ["lapic-lvt-timer"]
    # LINT0 in ExtINT mode (0x700) and LINT1 in NMI mode (0x8400) deliver no vector of
    # their own; perf/error/thermal are masked at vector 0 (their reset value).
    assert sorted(s.source for s in sources[0x00]) == [
        "lapic-lvt-error",
        "lapic-lvt-perf",
        "lapic-lvt-thermal",
    ]
    assert all(s.masked for s in sources[0x00]) and attribute(0, pic, lapic) is None
    assert [s.source for s in sources[0xFF]] == ["lapic-spurious"]
    open_only = vector_map(pic, lapic, unmasked_only=True)
    assert list(open_only) == [0x20, 0x21, 0x22, 0xFF]


def test_bios_bases_put_irq0_on_the_double_fault_vector() -> None:
    pic, lapic = recorded("pic-unremapped.amd64")
    assert (pic.master.irq_base, pic.slave.irq_base) == (0x08, 0x70)
    irq0 = attribute(0x08, pic, lapic)
    assert irq0 is not None and irq0.label == "IRQ0 (PIT timer)" and not irq0.masked
    # 0x0a, the master's IRQ2, is the cascade: nothing delivers there.
    assert 0x0A not in vector_map(pic, lapic)
    assert attribute(0x0A, pic, lapic) is None


def test_a_masked_pic_line_still_attributes_a_masked_lvt_entry_does_not() -> None:
    pic, lapic = recorded("timer-gate-missing.amd64")
    closed = replace(pic, master=replace(pic.master, imr=0xFF))
    irq0 = attribute(0x20, closed, lapic)
    assert irq0 is not None and irq0.masked and irq0.irq == 0
    masked_timer = replace(lapic, lvt_timer=lapic.lvt_timer | 1 << 16)
    assert attribute(0x22, pic, masked_timer) is None
    # A software-disabled APIC (SVR bit 8 clear) delivers nothing: every entry is masked.
    disabled = replace(lapic, svr=lapic.svr & ~0x100)
    assert all(s.masked for s in interrupt_sources(None, disabled))


def test_pic_and_lapic_on_one_vector_prefers_the_open_pic_line() -> None:
    pic, lapic = recorded("timer-gate-missing.amd64")
    clash = replace(lapic, lvt_timer=0x20020)  # the LAPIC timer on IRQ0's vector
    assert [s.source for s in vector_map(pic, clash)[0x20]] == ["pic-master", "lapic-lvt-timer"]
    first = attribute(0x20, pic, clash)
    assert first is not None and first.source == "pic-master"
    only_lapic = replace(pic, master=replace(pic.master, imr=0xFF))
    second = attribute(0x20, only_lapic, clash)
    assert second is not None and second.source == "lapic-lvt-timer"


def test_ioapic_redirection_entries() -> None:
    # entry 0: vector 0x08, fixed, unmasked; entry 1: masked; entry 2: NMI (no vector)
    entries = {0: 0x0000_0008, 1: 0x0001_0031, 2: 0x0000_0400}
    sources = interrupt_sources(None, None, entries)
    assert [(s.vector, s.source, s.line, s.masked) for s in sources] == [
        (0x08, "ioapic", 0, False),
        (0x31, "ioapic", 1, True),
    ]
    found = attribute(0x08, None, None, entries)
    assert found is not None and found.label == "I/O APIC entry 0"


def test_checks_pic_vectors_reads_the_same_map() -> None:
    pic, _ = recorded("timer-gate-missing.amd64")
    # IMR 0xf8 opens IRQ0-2; IRQ2 is the cascade, so only two vectors are delivered.
    assert pic_vectors(pic) == {0x20: "IRQ0", 0x21: "IRQ1"}


def test_the_pit_routed_through_the_ioapic_to_vector_8() -> None:
    """Fault-matrix case amd64-ioapic-pit-vector-08 (QEMU 7.2 ``info pic``): both 8259s
    masked at 0x20/0x28, the I/O APIC's pin 2 (the PIT's ISA IRQ0 override) on vector 8."""
    snapshot = load_snapshot(MATRIX / "amd64-ioapic-pit-vector-08.json")
    assert snapshot.pic is not None and snapshot.pic.master.imr == 0xFF
    entries = ioapic_entries(snapshot.hmp["info pic"])
    assert len(entries) == 24 and entries[2] & 0x1FFFF == 0x08  # unmasked, fixed, vector 8
    found = attribute(0x08, snapshot.pic, snapshot.lapic, entries)
    assert found is not None
    assert (found.source, found.line, found.masked, found.label) == (
        "ioapic",
        2,
        False,
        "I/O APIC entry 2",
    )
    assert attribute(0x08, snapshot.pic, snapshot.lapic) is None  # without the I/O APIC
