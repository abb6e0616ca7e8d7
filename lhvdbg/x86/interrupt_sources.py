"""Which device delivers on which vector: the one map of the 8259 PICs and the local APIC.

Given the captured :class:`~lhvdbg.x86.cpustate.PicState` and
:class:`~lhvdbg.x86.cpustate.LapicState` (and, once captured, I/O APIC redirection
entries), :func:`interrupt_sources` lists every device input with the vector it is
programmed to deliver on; :func:`vector_map` groups them by vector and
:func:`attribute` names the device behind a hardware interrupt the log shows.

Facts used:

* Intel 8259A datasheet: ICW2 sets a chip's vector base (lines 0-7 arrive on base+line);
  the master's IRQ2 input is the slave's cascade, so no interrupt is ever delivered on
  the master's base+2; a spurious interrupt arrives on base+7. The IMR (OCW1) masks lines.
  IRQ device assignments are the PC/AT's.
* Intel SDM Vol. 3A §11.5.1 (Local Vector Table, Figure 11-8): vector bits 0-7, delivery
  mode bits 8-10 (only Fixed delivers the entry's own vector; NMI, SMI, INIT and ExtINT
  do not), mask bit 16; the timer has no delivery-mode field. §11.9: the spurious vector
  (SVR bits 0-7). §11.4.3: with the APIC software-disabled (SVR bit 8 clear) every LVT
  entry acts masked.
* Intel 82093AA I/O APIC datasheet §3.2.4: a redirection entry's vector is bits 0-7, its
  mask bit 16, its delivery mode bits 8-10 (Fixed and Lowest Priority deliver the vector).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from lhvdbg.x86.cpustate import LapicState, PicState
from lhvdbg.x86.ioapic import parse_ioapic_pins

__all__ = [
    "CASCADE_LINE",
    "IRQ_DEVICES",
    "SPURIOUS_LINE",
    "InterruptSource",
    "attribute",
    "interrupt_sources",
    "ioapic_entries",
    "irq_device",
    "vector_map",
]

CASCADE_LINE = 2  # the master's input the slave is wired to: never delivered
SPURIOUS_LINE = 7  # an 8259 signals a spurious interrupt on its line 7

IRQ_DEVICES: Mapping[int, str] = {
    0: "PIT timer",
    1: "keyboard",
    2: "cascade",
    3: "COM2",
    4: "COM1",
    6: "floppy",
    7: "LPT1 or spurious",
    8: "RTC",
    12: "PS/2 mouse",
    14: "primary ATA",
    15: "secondary ATA or spurious",
}
"""The PC/AT's device on each IRQ line (IRQ8-15 on the slave); unlisted lines vary."""

_LVT_DEVICES: Mapping[str, str] = {
    "timer": "LAPIC timer",
    "lint0": "LINT0 pin",
    "lint1": "LINT1 pin",
    "error": "APIC error",
    "perf": "performance counter",
    "thermal": "thermal sensor",
    "cmci": "corrected machine check",
}
_VECTOR = 0xFF
_DELIVERY_SHIFT, _DELIVERY_MASK = 8, 0b111
_FIXED, _LOWEST_PRIORITY = 0b000, 0b001
_MASKED = 1 << 16


@dataclass(frozen=True)
class InterruptSource:
    """One device input and the vector it delivers on.

    ``source``: ``pic-master``, ``pic-slave``, ``lapic-lvt-<entry>`` (``timer``,
    ``lint0``, ...), ``lapic-spurious`` or ``ioapic``. ``line``: the input on its chip (0-7
    for a PIC, the redirection entry for the I/O APIC; None for the local APIC).
    ``device``: what is wired there (``PIT timer``, ``LAPIC timer``; None when the PC/AT
    assigns nothing). ``masked``: the input is masked in the captured state.
    """

    vector: int
    source: str
    line: int | None
    device: str | None
    masked: bool

    @property
    def chip(self) -> str | None:
        """``master`` or ``slave`` for an 8259 input, else None."""
        if self.source.startswith("pic-"):
            return self.source.removeprefix("pic-")
        return None

    @property
    def irq(self) -> int | None:
        """The IRQ number of an 8259 input (the slave's lines are IRQ8-15), else None."""
        if self.chip is None or self.line is None:
            return None
        return self.line + (8 if self.chip == "slave" else 0)

    @property
    def label(self) -> str:
        """``IRQ0 (PIT timer)``, ``LAPIC timer``, ``I/O APIC entry 2``."""
        if self.irq is not None:
            return f"IRQ{self.irq}" + (f" ({self.device})" if self.device else "")
        if self.source == "ioapic":
            return f"I/O APIC entry {self.line}"
        return self.device or self.source


def irq_device(irq: int) -> str | None:
    """The PC/AT device on IRQ ``irq`` (0-15), or None."""
    return IRQ_DEVICES.get(irq)


def _pic_sources(pic: PicState) -> list[InterruptSource]:
    out = []
    for name, chip, first in (("master", pic.master, 0), ("slave", pic.slave, 8)):
        for line in range(8):
            if name == "master" and line == CASCADE_LINE:
                continue  # the slave's cascade input: never delivered
            out.append(
                InterruptSource(
                    (chip.irq_base + line) & _VECTOR,
                    f"pic-{name}",
                    line,
                    irq_device(first + line),
                    bool(chip.imr >> line & 1),
                )
            )
    return out


def _lapic_sources(lapic: LapicState) -> list[InterruptSource]:
    disabled = not lapic.enabled
    out = [
        InterruptSource(
            lapic.lvt_timer & _VECTOR,
            "lapic-lvt-timer",
            None,
            _LVT_DEVICES["timer"],
            disabled or bool(lapic.lvt_timer & _MASKED),
        )
    ]
    for name, value in lapic.lvt.items():
        if value >> _DELIVERY_SHIFT & _DELIVERY_MASK != _FIXED:
            continue  # NMI, SMI, INIT, ExtINT: not the entry's own vector
        out.append(
            InterruptSource(
                value & _VECTOR,
                f"lapic-lvt-{name}",
                None,
                _LVT_DEVICES.get(name, name),
                disabled or bool(value & _MASKED),
            )
        )
    out.append(InterruptSource(lapic.svr & _VECTOR, "lapic-spurious", None, "spurious", disabled))
    return out


def _ioapic_sources(entries: Mapping[int, int]) -> list[InterruptSource]:
    out = []
    for index, entry in sorted(entries.items()):
        if entry >> _DELIVERY_SHIFT & _DELIVERY_MASK not in (_FIXED, _LOWEST_PRIORITY):
            continue
        out.append(InterruptSource(entry & _VECTOR, "ioapic", index, None, bool(entry & _MASKED)))
    return out


def ioapic_entries(info_pic: str) -> dict[int, int]:
    """Pin → raw redirection entry of the I/O APIC, from QEMU's ``info pic`` text (empty
    without an I/O APIC)."""
    return {pin: entry.raw for pin, entry in parse_ioapic_pins(info_pic).items()}


def interrupt_sources(
    pic: PicState | None,
    lapic: LapicState | None = None,
    ioapic: Mapping[int, int] | None = None,
) -> tuple[InterruptSource, ...]:
    """Every device input that delivers its own vector, masked ones included: the 8259
    lines (not the master's cascade IRQ2), the local APIC's fixed-mode LVT entries and its
    spurious vector, and the I/O APIC's redirection entries (pin → raw 64-bit entry, as
    :func:`ioapic_entries` reads them from ``info pic``)."""
    out: list[InterruptSource] = []
    if pic is not None:
        out += _pic_sources(pic)
    if lapic is not None:
        out += _lapic_sources(lapic)
    if ioapic is not None:
        out += _ioapic_sources(ioapic)
    return tuple(out)


def vector_map(
    pic: PicState | None,
    lapic: LapicState | None = None,
    ioapic: Mapping[int, int] | None = None,
    *,
    unmasked_only: bool = False,
) -> dict[int, tuple[InterruptSource, ...]]:
    """vector → the inputs that deliver on it (8259 first, then LAPIC, then I/O APIC),
    ordered by vector; ``unmasked_only`` leaves out the masked inputs."""
    out: dict[int, list[InterruptSource]] = {}
    for source in interrupt_sources(pic, lapic, ioapic):
        if unmasked_only and source.masked:
            continue
        out.setdefault(source.vector, []).append(source)
    return {v: tuple(out[v]) for v in sorted(out)}


def attribute(
    vector: int,
    pic: PicState | None,
    lapic: LapicState | None = None,
    ioapic: Mapping[int, int] | None = None,
) -> InterruptSource | None:
    """The input most likely behind a hardware interrupt delivered on ``vector``: an
    unmasked one if any, 8259 lines before LAPIC entries before I/O APIC entries; else a
    masked 8259 line (its IMR bit may have been set since the delivery; a masked LVT
    entry, often still at its reset value, is no evidence). None when nothing is
    programmed with that vector (IRQ2's vector never counts: it is the cascade)."""
    sources = vector_map(pic, lapic, ioapic).get(vector, ())
    unmasked = [s for s in sources if not s.masked]
    masked_pic = [s for s in sources if s.masked and s.chip is not None]
    candidates = unmasked or masked_pic
    return candidates[0] if candidates else None
