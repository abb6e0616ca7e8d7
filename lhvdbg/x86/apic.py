"""Local APIC register layouts: LVT entries, the spurious-interrupt vector register, and
the timer's divide configuration.

Intel SDM Vol. 3A §11.5.1 (Local Vector Table, Figure 11-8), §11.5.4 (APIC timer, divide
configuration register, Figure 11-10) and §11.9 (spurious-interrupt vector register,
Figure 11-23).
"""

from __future__ import annotations

from functools import cache

from lhvdbg.x86.layout import Field, Layout, bit, bits, catalogued

DELIVERY_MODES = {
    0b000: "Fixed",
    0b010: "SMI",
    0b100: "NMI",
    0b101: "INIT",
    0b111: "ExtINT",
}
TIMER_MODES = {0: "one-shot", 1: "periodic", 2: "TSC-deadline", 3: "reserved"}
_POLARITY = {0: "active high", 1: "active low"}
_TRIGGER = {0: "edge", 1: "level"}
# The divide value is bits 0, 1 and 3; as one field (bit 3 on top) 0..7 read:
DIVIDE_BY = {0: 2, 1: 4, 2: 8, 3: 16, 4: 32, 5: 64, 6: 128, 7: 1}


@catalogued()
@cache
def lvt_timer_layout() -> Layout:
    """LVT timer register (Intel SDM Vol. 3A §11.5.1, Figure 11-8)."""
    return Layout(
        "lvt timer",
        32,
        (
            bits("vector", 0, 7, "interrupt vector delivered on expiry"),
            bit("pending", 12, "delivery status: send pending"),
            bit("masked", 16, "interrupt masked"),
            Field("mode", ((17, 18),), "timer mode", enum=TIMER_MODES),
        ),
        "Local APIC LVT timer register (Intel SDM Vol. 3A §11.5.1, Figure 11-8).",
    )


@catalogued()
@cache
def lvt_layout() -> Layout:
    """LINT0/LINT1/error/performance/thermal LVT entry (Intel SDM Vol. 3A §11.5.1)."""
    return Layout(
        "lvt",
        32,
        (
            bits("vector", 0, 7, "interrupt vector"),
            Field("delivery", ((8, 10),), "delivery mode", enum=DELIVERY_MODES),
            bit("pending", 12, "delivery status: send pending"),
            Field("polarity", ((13, 13),), "input pin polarity (LINT only)", enum=_POLARITY),
            bit("remote_irr", 14, "remote IRR (level-triggered LINT only)"),
            Field("trigger", ((15, 15),), "trigger mode (LINT only)", enum=_TRIGGER),
            bit("masked", 16, "interrupt masked"),
        ),
        "Local APIC LVT entry (Intel SDM Vol. 3A §11.5.1, Figure 11-8).",
    )


@catalogued()
@cache
def svr_layout() -> Layout:
    """Spurious-interrupt vector register (Intel SDM Vol. 3A §11.9, Figure 11-23)."""
    return Layout(
        "svr",
        32,
        (
            bits("vector", 0, 7, "spurious-interrupt vector"),
            bit("enabled", 8, "APIC software enable"),
            bit("focus_disabled", 9, "focus processor checking disabled"),
            bit("eoi_suppress", 12, "EOI-broadcast suppression"),
        ),
        "Local APIC spurious-interrupt vector register (Intel SDM Vol. 3A §11.9, Fig. 11-23).",
    )


@catalogued()
@cache
def divide_layout() -> Layout:
    """Timer divide configuration register (Intel SDM Vol. 3A §11.5.4, Figure 11-10)."""
    return Layout(
        "timer divide",
        32,
        (
            Field(
                "divide",
                ((0, 1), (3, 3)),
                "divide the bus/core crystal clock by",
                enum={k: f"divide by {v}" for k, v in DIVIDE_BY.items()},
            ),
        ),
        "Local APIC divide configuration register (Intel SDM Vol. 3A §11.5.4, Figure 11-10).",
    )


def vectors_of(bitmap: int) -> list[int]:
    """The vectors set in a 256-bit ISR/IRR/TMR bitmap, lowest first."""
    return [v for v in range(256) if bitmap >> v & 1]
