"""Why a guest's machine reset: a triple fault, or a reset the guest asked for.

QEMU reports both the same way: with ``-action reboot=shutdown,shutdown=pause`` either
one pauses the machine and QMP's ``SHUTDOWN`` event says ``guest-reset`` (QEMU's x86
triple fault calls ``qemu_system_reset_request(SHUTDOWN_CAUSE_GUEST_RESET)``, as do the
keyboard controller, port 0xCF9 and port 0x92). What tells them apart:

* TCG: the ``-d int,cpu_reset`` log has a ``Triple fault`` line before a triple fault's
  reset, and none before a requested one.
* without a log (KVM): the instruction that asked. A requested reset is an ``out`` whose
  port and value ask for it, and the CPU stops right after it:

  ==========  ==================  =========================================================
  port        value               what
  ==========  ==================  =========================================================
  0x64        0xFE                8042 keyboard controller: pulse the reset line
  0xCF9       bit 2 set (0x06)    PIIX/ICH reset control register (also the ACPI reset
                                  register QEMU's FADT names)
  0x92        bit 0 set           system control port A: fast reset
  ==========  ==================  =========================================================

  Intel SDM Vol. 3A §6.15 (interrupt 8, "Double Fault Exception"): a fault while
  delivering #DF makes the processor enter shutdown, which the chipset turns into a
  reset; no instruction of the guest asks for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from lhvdbg.x86.insn_sites import out_ending_at

__all__ = ["RESET_PORTS", "ResetCause", "ResetReading", "reset_cause"]

ResetCause = Literal["triple-fault", "reset-requested"]

TRIPLE_FAULT_LINE = "Triple fault"

# port -> (mask, what the port is); a write with any mask bit set asks for a reset
RESET_PORTS: Mapping[int, tuple[int, int, str]] = {
    0x64: (0xFF, 0xFE, "keyboard controller reset (0xFE to port 0x64)"),
    0xCF9: (0x04, 0x04, "reset control register (port 0xCF9)"),
    0x92: (0x01, 0x01, "fast reset (port 0x92 bit 0)"),
}


@dataclass(frozen=True)
class ResetReading:
    """The cause and one line saying how it was told."""

    cause: ResetCause
    how: str


def _asks_reset(port: int, value: int) -> str | None:
    entry = RESET_PORTS.get(port)
    if entry is None:
        return None
    mask, wanted, what = entry
    return what if value & mask == wanted else None


def out_before(code: bytes, registers: Mapping[str, int]) -> str | None:
    """What the ``out`` ending just before the instruction pointer asked for, when it asked
    for a reset. ``code`` ends at the instruction pointer; ``registers`` hold ``rax`` and
    ``rdx`` (or ``eax``/``edx``)."""
    al = (registers.get("rax", registers.get("eax", 0))) & 0xFF
    dx = (registers.get("rdx", registers.get("edx", 0))) & 0xFFFF
    out = out_ending_at(code)
    if out is None:
        return None
    port, _ = out  # a wider out's low byte reaches the port first
    return _asks_reset(dx if port is None else port, al)


def reset_cause(
    int_log: str | None,
    code_before_ip: bytes = b"",
    registers: Mapping[str, int] | None = None,
) -> ResetReading:
    """Why the machine reset. ``int_log`` is QEMU's ``-d int,cpu_reset`` text (None when
    there is none, as under KVM); ``code_before_ip`` the bytes just before the stopped
    instruction pointer; ``registers`` the general registers there."""
    regs = registers or {}
    asked = out_before(code_before_ip, regs)
    if int_log is not None:
        if TRIPLE_FAULT_LINE in int_log:
            return ResetReading("triple-fault", "QEMU's log says 'Triple fault'")
        # TCG may run on to the end of the translation block after the out (a hlt, a
        # jmp): look a few bytes further back, for the words only
        for end in range(len(code_before_ip) - 1, 1, -1):
            asked = asked or out_before(code_before_ip[:end], regs)
        how = "no 'Triple fault' in QEMU's log before the reset"
        return ResetReading("reset-requested", f"{asked}; {how}" if asked else how)
    if asked:
        return ResetReading("reset-requested", f"the last instruction was an out: {asked}")
    return ResetReading(
        "triple-fault", "no interrupt log; the last instruction did not ask for a reset"
    )
