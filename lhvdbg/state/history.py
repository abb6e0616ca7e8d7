"""The history of what a kernel programmed, in order (pure).

A :class:`History` is a list of :class:`HistoryEvent` s: port writes to the legacy
devices, local APIC / I/O APIC register writes, system instructions (``lgdt``, ``lidt``,
``ltr``, ``mov CRn``, ``wrmsr``, ``sti``, ``cli``) and the interrupts of QEMU's ``-d int``
log, each named by its meaning (:mod:`lhvdbg.x86.pio`). ``source`` is ``kernel`` from the
kernel's entry on, ``firmware`` before it (the BIOS programs the PICs itself).

:func:`build_history` numbers and decodes raw events (``lhvdbg.machine.trace`` records
them); :mod:`lhvdbg.diagnose.history` reads and compares histories.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from lhvdbg.x86.pio import DeviceDecoder, lapic_write_text

KINDS = ("port", "lapic", "ioapic", "insn", "interrupt", "fault")


@dataclass(frozen=True)
class HistoryEvent:
    """One event. ``kind`` is one of :data:`KINDS`; ``port`` (port writes), ``address``
    (MMIO register writes), ``insn`` (instructions) say what was touched; ``value`` what
    was written or loaded (for ``lgdt``/``lidt`` the base, ``limit`` beside it; for an
    interrupt the vector); ``rip``/``symbol`` where (when known); ``name`` a short key
    (``ICW2``, ``OCW1``, ``lidt``, ``irq``...); ``decoded`` the one-line meaning."""

    seq: int
    kind: str
    value: int | None = None
    port: int | None = None
    address: int | None = None
    insn: str | None = None
    rip: int | None = None
    symbol: str | None = None
    decoded: str = ""
    name: str = ""
    source: str = "kernel"
    facts: dict[str, int] = field(default_factory=dict)

    @property
    def function(self) -> str | None:
        """The function the event happened in (the symbol without ``+0x..``)."""
        if not self.symbol or self.symbol.startswith("0x"):
            return None
        return self.symbol.split("+", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{seq, kind, port|address|insn, value, rip, symbol, decoded}``."""
        out: dict[str, Any] = {"seq": self.seq, "kind": self.kind}
        if self.port is not None:
            out["port"] = f"{self.port:#x}"
        if self.address is not None:
            out["address"] = f"{self.address:#x}"
        if self.insn is not None:
            out["insn"] = self.insn
        out["value"] = None if self.value is None else f"{self.value:#x}"
        out["rip"] = None if self.rip is None else f"{self.rip:#x}"
        out["symbol"] = self.symbol
        out["decoded"] = self.decoded
        out["name"] = self.name
        out["source"] = self.source
        if self.facts:
            out["facts"] = dict(self.facts)
        return out


@dataclass(frozen=True)
class History:
    """A run's events in order, with how the run ended and what ran it."""

    events: tuple[HistoryEvent, ...]
    ended: str = ""
    qemu_version: str = ""
    kernel: str = ""
    seconds: float = 0.0

    def kernel_events(self) -> list[HistoryEvent]:
        """The events from the kernel's entry on."""
        return [e for e in self.events if e.source == "kernel"]

    def named(self, name: str, *, chip: str | None = None) -> list[HistoryEvent]:
        """The kernel's events called ``name`` (``ICW1``...), of one PIC when ``chip``."""
        return [
            e
            for e in self.kernel_events()
            if e.name == name and (chip is None or e.decoded.startswith(chip))
        ]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of the whole history."""
        return {
            "ended": self.ended,
            "qemu_version": self.qemu_version,
            "kernel": self.kernel,
            "seconds": round(self.seconds, 3),
            "events": [e.to_dict() for e in self.events],
        }


BIOS_BASES = {"master": 0x08, "slave": 0x70}


@dataclass
class _InterruptSources:
    """Which device a vector comes from, as programmed so far (PIC bases start as the
    BIOS left them)."""

    bases: dict[str, int] = field(default_factory=lambda: dict(BIOS_BASES))
    set_by: dict[str, str] = field(default_factory=dict)
    lapic_timer: int | None = None

    def note_port(self, event: HistoryEvent) -> None:
        if event.name == "ICW2" and "base" in event.facts:
            chip = "master" if event.decoded.startswith("master") else "slave"
            self.bases[chip] = event.facts["base"]
            self.set_by[chip] = event.source

    def name(self, vector: int) -> str:
        if self.lapic_timer is not None and vector == self.lapic_timer:
            return "the LAPIC timer"
        for chip, first_irq in (("master", 0), ("slave", 8)):
            base = self.bases[chip]
            if base <= vector < base + 8:
                whose = (
                    "the BIOS's" if chip not in self.set_by else "set by the " + self.set_by[chip]
                )
                return f"IRQ{first_irq + vector - base} ({chip} PIC base {base:#04x}, {whose})"
        return "not a PIC or LAPIC timer vector"


def build_history(raw: list[HistoryEvent], **meta: Any) -> History:
    """Number ``raw`` (already in order) and name each port write and LAPIC write by its
    meaning; the firmware's writes and the kernel's go through separate device models
    (the kernel starts with the devices as the firmware left them)."""
    decoders = {"firmware": DeviceDecoder(), "kernel": DeviceDecoder()}
    sources = _InterruptSources()
    out: list[HistoryEvent] = []
    for seq, event in enumerate(raw, start=1):
        event = replace(event, seq=seq)
        if event.kind == "port" and event.port is not None and event.value is not None:
            d = decoders[event.source].port_write(event.port, event.value)
            event = replace(event, decoded=d.text, name=d.name, facts=dict(d.facts))
            sources.note_port(event)
        elif event.kind == "interrupt" and event.name == "irq" and event.value is not None:
            event = replace(event, decoded=f"{event.decoded}: {sources.name(event.value)}")
        elif event.kind == "lapic" and event.address is not None and event.value is not None:
            offset = event.address & 0xFFF
            if offset == 0x320:
                sources.lapic_timer = event.value & 0xFF
            event = replace(
                event,
                decoded=lapic_write_text(offset, event.value),
                name="LAPIC EOI" if offset == 0xB0 else f"LAPIC {offset:#x}",
            )
        out.append(event)
    return History(tuple(out), **meta)
