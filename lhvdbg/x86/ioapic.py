"""The I/O APIC redirection-table entry, and QEMU's ``info pic`` lines that show them.

Intel 82093AA I/O APIC datasheet §3.2.4 (I/O redirection table registers: vector bits
0-7, delivery mode 8-10, destination mode 11, delivery status 12, polarity 13, remote IRR
14, trigger mode 15, mask 16, destination 56-63). QEMU (``hw/intc/ioapic_common.c``,
``ioapic_print_redtbl``) prints each pin as ``pin N  0x<64-bit entry> dest=.. vec=..``
under an ``ioapic0:`` header in ``info pic``.
"""

from __future__ import annotations

import re
from functools import cache

from lhvdbg.x86.apic import DELIVERY_MODES
from lhvdbg.x86.layout import Decoded, Field, Layout, bit, bits, catalogued

__all__ = ["ioapic_redirection_layout", "parse_ioapic_pins", "unmasked_vectors"]

_PIN = re.compile(r"^\s*pin\s+(\d+)\s+0x([0-9a-fA-F]{16})\b")


@catalogued()
@cache
def ioapic_redirection_layout() -> Layout:
    """I/O APIC redirection-table entry, 64 bits (82093AA datasheet §3.2.4)."""
    return Layout(
        "ioapic redirection entry",
        64,
        (
            bits("vector", 0, 7, "interrupt vector delivered for this pin"),
            Field("delivery_mode", ((8, 10),), "delivery mode", enum=DELIVERY_MODES),
            Field("dest_mode", ((11, 11),), "destination mode", enum={0: "physical", 1: "logical"}),
            bit("pending", 12, "delivery status: send pending"),
            Field(
                "polarity", ((13, 13),), "pin polarity", enum={0: "active high", 1: "active low"}
            ),
            bit("remote_irr", 14, "remote IRR (level-triggered)"),
            Field("trigger", ((15, 15),), "trigger mode", enum={0: "edge", 1: "level"}),
            bit("masked", 16, "interrupt masked"),
            bits("destination", 56, 63, "destination APIC ID (or logical set)"),
        ),
        "I/O APIC redirection-table entry (Intel 82093AA I/O APIC datasheet §3.2.4).",
    )


def parse_ioapic_pins(info_pic: str) -> dict[int, Decoded]:
    """Each I/O APIC pin's redirection entry from QEMU's ``info pic`` text (empty when the
    machine has no I/O APIC or the text has no pin lines)."""
    layout = ioapic_redirection_layout()
    pins: dict[int, Decoded] = {}
    for line in info_pic.splitlines():
        m = _PIN.match(line)
        if m is not None:
            pins[int(m.group(1))] = layout.decode(int(m.group(2), 16))
    return pins


def unmasked_vectors(pins: dict[int, Decoded]) -> dict[int, int]:
    """Vector → pin for every unmasked pin."""
    return {
        entry.values["vector"]: pin for pin, entry in pins.items() if not entry.values["masked"]
    }
