"""What a kernel's writes to the legacy devices mean: 8259 PIC, 8254 PIT, 8042 keyboard
controller, the reset control register 0xCF9, QEMU's isa-debug-exit, and local APIC
register writes.

Pure. :class:`DeviceDecoder` consumes writes in order (the 8259 and the 8254 are state
machines: a data-port write is ICW2 only right after ICW1, a PIT divisor byte is the low
or high half depending on the control word before it) and names each one by its meaning:
``ICW2: vector base 0x20``, ``OCW1: mask 0xfe (IRQ0 unmasked)``, ``PIT ch0 mode 2,
divisor 11932 = 100 Hz``.

Sources: Intel 8259A data sheet (ICW1–ICW4, OCW1–OCW3, Figures 7–8), Intel 82C54 data
sheet (control word format, Figure 7; counter input 1.193182 MHz on the PC), the 8042
command set (IBM PC/AT technical reference), Intel ICH/PCH data sheets (Reset Control
Register, I/O port 0xCF9), Intel SDM Vol. 3A §11.4.1 (local APIC register map, Table 11-1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from lhvdbg.x86.apic import divide_layout, lvt_layout, lvt_timer_layout, svr_layout
from lhvdbg.x86.layout import Field, Layout, bit, bits, catalogued

PIC_MASTER_CMD, PIC_MASTER_DATA, PIC_SLAVE_CMD, PIC_SLAVE_DATA = 0x20, 0x21, 0xA0, 0xA1
PIT_PORTS = (0x40, 0x41, 0x42)
PIT_CONTROL = 0x43
KBC_DATA, KBC_COMMAND = 0x60, 0x64
RESET_CONTROL = 0xCF9
DEBUG_EXIT = 0xF4
PIT_INPUT_HZ = 1_193_182  # the PC's 8254 counter clock (14.31818 MHz / 12)

#: The ports whose writes a history records, by device.
TRACKED_PORTS: dict[int, str] = {
    PIC_MASTER_CMD: "pic",
    PIC_MASTER_DATA: "pic",
    PIC_SLAVE_CMD: "pic",
    PIC_SLAVE_DATA: "pic",
    0x40: "pit",
    0x41: "pit",
    0x42: "pit",
    PIT_CONTROL: "pit",
    KBC_DATA: "kbc",
    KBC_COMMAND: "kbc",
    RESET_CONTROL: "reset",
    DEBUG_EXIT: "debug-exit",
}

_PIT_ACCESS = {0: "latch", 1: "low byte", 2: "high byte", 3: "low then high byte"}
_PIT_MODES = {
    0: "interrupt on terminal count",
    1: "one-shot",
    2: "rate generator",
    3: "square wave",
    4: "software strobe",
    5: "hardware strobe",
    6: "rate generator",
    7: "square wave",
}
_OCW2_COMMANDS = {
    0b001: "non-specific EOI",
    0b011: "specific EOI",
    0b101: "rotate on non-specific EOI",
    0b100: "set rotate in automatic EOI mode",
    0b000: "clear rotate in automatic EOI mode",
    0b111: "rotate on specific EOI",
    0b110: "set priority",
    0b010: "no operation",
}
_KBC_COMMANDS = {
    0x20: "read command byte",
    0x60: "write command byte",
    0xA7: "disable mouse port",
    0xA8: "enable mouse port",
    0xAA: "controller self-test",
    0xAD: "disable keyboard",
    0xAE: "enable keyboard",
    0xD1: "write output port",
    0xD4: "write to mouse",
    0xFE: "pulse reset line (CPU reset)",
}
#: Local APIC registers by offset (Intel SDM Vol. 3A §11.4.1, Table 11-1).
LAPIC_REGISTERS: dict[int, str] = {
    0x020: "ID",
    0x080: "TPR",
    0x0B0: "EOI",
    0x0D0: "LDR",
    0x0E0: "DFR",
    0x0F0: "SVR",
    0x280: "ESR",
    0x300: "ICR low",
    0x310: "ICR high",
    0x320: "LVT timer",
    0x330: "LVT thermal",
    0x340: "LVT perf",
    0x350: "LVT LINT0",
    0x360: "LVT LINT1",
    0x370: "LVT error",
    0x380: "timer initial count",
    0x3E0: "timer divide",
}


@catalogued()
@cache
def icw1_layout() -> Layout:
    """8259A ICW1, written to the command port with bit 4 set (8259A data sheet, Fig. 7)."""
    return Layout(
        "8259 ICW1",
        8,
        (
            bit("ic4", 0, "ICW4 needed"),
            bit("single", 1, "single 8259 (no ICW3)"),
            bit("adi", 2, "call address interval 4 (8080 mode only)"),
            bit("ltim", 3, "level-triggered mode"),
            bit("init", 4, "1: this is ICW1"),
        ),
        "8259A initialisation command word 1 (Intel 8259A data sheet, Figure 7).",
    )


@catalogued()
@cache
def icw4_layout() -> Layout:
    """8259A ICW4 (8259A data sheet, Fig. 7)."""
    return Layout(
        "8259 ICW4",
        8,
        (
            bit("upm", 0, "8086/8088 mode"),
            bit("aeoi", 1, "automatic end of interrupt"),
            Field("buffered", ((2, 3),), "buffered mode (0x: not buffered)"),
            bit("sfnm", 4, "special fully nested mode"),
        ),
        "8259A initialisation command word 4 (Intel 8259A data sheet, Figure 7).",
    )


@catalogued()
@cache
def ocw2_layout() -> Layout:
    """8259A OCW2: command port, bits 3-4 clear (8259A data sheet, Fig. 8)."""
    return Layout(
        "8259 OCW2",
        8,
        (
            bits("level", 0, 2, "IR level acted on (specific commands)"),
            Field("command", ((5, 7),), "R, SL, EOI bits", enum=_OCW2_COMMANDS),
        ),
        "8259A operation command word 2 (Intel 8259A data sheet, Figure 8).",
    )


@catalogued()
@cache
def ocw3_layout() -> Layout:
    """8259A OCW3: command port, bit 3 set, bit 4 clear (8259A data sheet, Fig. 8)."""
    return Layout(
        "8259 OCW3",
        8,
        (
            Field("read", ((0, 1),), "RR, RIS", enum={2: "read IRR", 3: "read ISR"}),
            bit("poll", 2, "poll command"),
            Field(
                "smm", ((5, 6),), "ESMM, SMM", enum={2: "reset special mask", 3: "set special mask"}
            ),
        ),
        "8259A operation command word 3 (Intel 8259A data sheet, Figure 8).",
    )


@catalogued()
@cache
def pit_control_layout() -> Layout:
    """8254 control word, port 0x43 (82C54 data sheet, Figure 7)."""
    return Layout(
        "8254 control word",
        8,
        (
            bit("bcd", 0, "BCD counting"),
            Field("mode", ((1, 3),), "counter mode", enum=_PIT_MODES),
            Field("access", ((4, 5),), "read/write access", enum=_PIT_ACCESS),
            Field("channel", ((6, 7),), "counter (3: read-back command)"),
        ),
        "8254 programmable interval timer control word (Intel 82C54 data sheet, Figure 7).",
    )


@catalogued()
@cache
def reset_control_layout() -> Layout:
    """Reset Control Register at I/O port 0xCF9 (Intel ICH/PCH data sheets)."""
    return Layout(
        "reset control 0xcf9",
        8,
        (
            bit("sys_rst", 1, "system reset (with RST_CPU: hard reset)"),
            bit("rst_cpu", 2, "reset the CPU (on the 0 to 1 edge)"),
            bit("full_rst", 3, "full reset (power cycle)"),
        ),
        "Reset Control Register, I/O port 0xCF9 (Intel ICH/PCH data sheets).",
    )


def pit_rate_text(divisor: int) -> str:
    """``divisor 11932 = 100 Hz`` (0 counts as 65536, the 8254's largest count)."""
    count = divisor or 0x10000
    hz = PIT_INPUT_HZ / count
    rate = f"{hz:.0f} Hz" if abs(hz - round(hz)) < 0.05 else f"{hz:.2f} Hz"
    return f"divisor {divisor} = {rate}"


def _irqs(mask: int, base: int) -> str:
    open_lines = [f"IRQ{base + i}" for i in range(8) if not mask >> i & 1]
    if not open_lines:
        return "all masked"
    if len(open_lines) == 8:
        return "all unmasked"
    return f"{', '.join(open_lines)} unmasked"


@dataclass
class _PicState:
    """One 8259's initialisation state machine (8259A data sheet, Figure 6)."""

    expect: list[str] = field(default_factory=list)  # the ICWs still to come
    ic4: bool = False
    base: int | None = None


@dataclass(frozen=True)
class Decoded:
    """A write named by its meaning: ``name`` (``ICW2``, ``OCW1``, ``PIT control``...),
    ``text`` (the one line shown) and ``facts`` (structured values, e.g. ``base``)."""

    name: str
    text: str
    facts: dict[str, int] = field(default_factory=dict)


@dataclass
class DeviceDecoder:
    """Names a stream of port writes in order (the devices' state machines)."""

    pics: dict[str, _PicState] = field(
        default_factory=lambda: {"master": _PicState(), "slave": _PicState()}
    )
    pit_access: dict[int, int] = field(default_factory=dict)
    pit_mode: dict[int, int] = field(default_factory=dict)
    pit_low: dict[int, int | None] = field(default_factory=dict)
    kbc_pending: int | None = None

    def port_write(self, port: int, value: int) -> Decoded:
        """The meaning of writing ``value`` to ``port`` (updates the devices' state)."""
        if port in (PIC_MASTER_CMD, PIC_SLAVE_CMD, PIC_MASTER_DATA, PIC_SLAVE_DATA):
            chip = "master" if port in (PIC_MASTER_CMD, PIC_MASTER_DATA) else "slave"
            if port in (PIC_MASTER_CMD, PIC_SLAVE_CMD):
                return self._pic_command(chip, value & 0xFF)
            return self._pic_data(chip, value & 0xFF)
        if port == PIT_CONTROL:
            return self._pit_control(value & 0xFF)
        if port in PIT_PORTS:
            return self._pit_data(port - PIT_PORTS[0], value & 0xFF)
        if port == KBC_COMMAND:
            self.kbc_pending = value & 0xFF
            name = _KBC_COMMANDS.get(value & 0xFF, f"command {value & 0xFF:#04x}")
            return Decoded("KBC command", f"KBC: {name}", {"command": value & 0xFF})
        if port == KBC_DATA:
            after = self.kbc_pending
            self.kbc_pending = None
            what = f" (for command {after:#04x})" if after is not None else " (to the keyboard)"
            return Decoded("KBC data", f"KBC data {value & 0xFF:#04x}{what}")
        if port == RESET_CONTROL:
            d = reset_control_layout().decode(value & 0xFF)
            kind = "full reset" if d.full_rst else "hard reset" if d.sys_rst else "CPU reset"
            act = f"{kind} requested" if d.rst_cpu else "reset type selected, no reset yet"
            return Decoded("reset control", f"0xCF9: {act}", {"value": value & 0xFF})
        if port == DEBUG_EXIT:
            code = (value << 1) | 1
            return Decoded("debug exit", f"isa-debug-exit: guest exits, QEMU status {code}")
        return Decoded("port write", f"port {port:#x} = {value:#x}")

    def _pic_command(self, chip: str, value: int) -> Decoded:
        state = self.pics[chip]
        if value & 0x10:
            icw1 = icw1_layout().decode(value)
            state.ic4 = bool(icw1.ic4)
            state.expect = (
                ["ICW2"] + ([] if icw1.single else ["ICW3"]) + (["ICW4"] if icw1.ic4 else [])
            )
            how = [
                "edge" if not icw1.ltim else "level",
                "single" if icw1.single else "cascade",
                "ICW4 follows" if icw1.ic4 else "no ICW4",
            ]
            return Decoded("ICW1", f"{chip} ICW1: start initialisation ({', '.join(how)})")
        if value & 0x08:
            d = ocw3_layout().decode(value)
            what = d.describe("read") if d.read in (2, 3) else "no register read"
            return Decoded("OCW3", f"{chip} OCW3: {what}" + (", poll" if d.poll else ""))
        d = ocw2_layout().decode(value)
        level = f" IR{d.level}" if d.command in (0b011, 0b111, 0b110) else ""
        return Decoded("OCW2", f"{chip} OCW2: {d.describe('command')}{level}")

    def _pic_data(self, chip: str, value: int) -> Decoded:
        state = self.pics[chip]
        if state.expect:
            word = state.expect.pop(0)
            if word == "ICW2":
                state.base = value & 0xF8
                return Decoded(
                    "ICW2", f"{chip} ICW2: vector base {value & 0xF8:#04x}", {"base": value & 0xF8}
                )
            if word == "ICW3":
                if chip == "master":
                    lines = [f"IR{i}" for i in range(8) if value >> i & 1]
                    text = f"slave on {', '.join(lines) or 'no line'}"
                else:
                    text = f"slave identity {value & 7}"
                return Decoded("ICW3", f"{chip} ICW3: {text}")
            d = icw4_layout().decode(value)
            mode = "8086 mode" if d.upm else "8080 mode"
            extra = ", automatic EOI" if d.aeoi else ""
            return Decoded("ICW4", f"{chip} ICW4: {mode}{extra}")
        base = 0 if chip == "master" else 8
        return Decoded(
            "OCW1", f"{chip} OCW1: mask {value:#04x} ({_irqs(value, base)})", {"mask": value}
        )

    def _pit_control(self, value: int) -> Decoded:
        d = pit_control_layout().decode(value)
        if d.channel == 3:
            return Decoded("PIT read-back", "PIT read-back command")
        if d.access == 0:
            return Decoded("PIT latch", f"PIT ch{d.channel}: latch count")
        self.pit_access[d.channel] = d.access
        self.pit_mode[d.channel] = d.mode
        self.pit_low[d.channel] = None
        return Decoded(
            "PIT control",
            f"PIT ch{d.channel}: mode {d.mode} ({d.describe('mode')}), {d.describe('access')}",
            {"channel": d.channel, "mode": d.mode},
        )

    def _pit_data(self, channel: int, value: int) -> Decoded:
        access = self.pit_access.get(channel, 3)
        mode = self.pit_mode.get(channel)
        head = f"PIT ch{channel}" + (f" mode {mode}" if mode is not None else "")
        if access == 3 and self.pit_low.get(channel) is None:
            self.pit_low[channel] = value
            return Decoded("PIT count low", f"PIT ch{channel}: divisor low byte {value:#04x}")
        if access == 3:
            low = self.pit_low[channel] or 0
            self.pit_low[channel] = None
            divisor = low | value << 8
        else:
            divisor = value << 8 if access == 2 else value
        facts = {"channel": channel, "divisor": divisor}
        return Decoded("PIT count", f"{head}, {pit_rate_text(divisor)}", facts)


def lapic_write_text(offset: int, value: int) -> str:
    """The meaning of writing ``value`` to the local APIC register at ``offset``."""
    name = LAPIC_REGISTERS.get(offset, f"register {offset:#x}")
    if offset == 0x0B0:
        return "LAPIC EOI"
    if offset == 0x0F0:
        d = svr_layout().decode(value)
        state = "enabled" if d.enabled else "disabled"
        return f"LAPIC SVR: APIC {state}, spurious vector {d.vector:#04x}"
    if offset == 0x320:
        d = lvt_timer_layout().decode(value)
        masked = ", masked" if d.masked else ""
        return f"LAPIC LVT timer: vector {d.vector:#04x}, {d.describe('mode')}{masked}"
    if 0x330 <= offset <= 0x370:
        d = lvt_layout().decode(value)
        masked = ", masked" if d.masked else ""
        return f"LAPIC {name}: {d.describe('delivery')}, vector {d.vector:#04x}{masked}"
    if offset == 0x380:
        return f"LAPIC timer initial count {value}"
    if offset == 0x3E0:
        return f"LAPIC timer {divide_layout().decode(value & 0xB).describe('divide')}"
    return f"LAPIC {name} = {value:#x}"
