"""The I/O APIC redirection entry and QEMU's ``info pic`` pin lines (82093AA §3.2.4)."""

from __future__ import annotations

import json
from pathlib import Path

from lhvdbg.x86.ioapic import ioapic_redirection_layout, parse_ioapic_pins, unmasked_vectors

MATRIX = Path(__file__).resolve().parents[1] / "fixtures" / "matrix"


def test_layout_round_trips_and_places_vector_and_mask() -> None:
    layout = ioapic_redirection_layout()
    raw = layout.encode(vector=0x08, masked=0, trigger=1, destination=0xFF)
    assert raw == 0x08 | 1 << 15 | 0xFF << 56
    assert layout.decode(raw).values["vector"] == 0x08
    assert layout.decode(0x10000).values["masked"] == 1


def test_pins_from_a_recorded_info_pic_with_the_pit_routed_to_vector_8() -> None:
    snap = json.loads((MATRIX / "amd64-ioapic-pit-vector-08.json").read_text())
    pins = parse_ioapic_pins(snap["hmp"]["info pic"])
    assert len(pins) == 24
    assert pins[2].values["vector"] == 0x08 and not pins[2].values["masked"]
    assert pins[0].values["masked"] == 1
    assert unmasked_vectors(pins) == {0x08: 2}


def test_no_ioapic_lines_no_pins() -> None:
    assert parse_ioapic_pins("pic0: irr=00 imr=fe isr=00 hprio=0 irq_base=20") == {}
