"""Run a freshly started session to its kernel's entry point, so time limits count from
there and not from QEMU's start.

A KVM guest on some hosts spends 6–9 s in the BIOS before the kernel runs; a limit that
started with QEMU ran out in the BIOS and the verdict was ``no-fault``. Here the boot
gets its own (generous) limit, and a kernel that never reaches its entry is said to have
never started. The entry is the multiboot header's ``entry_addr`` when the a.out kludge
gives one (that is where the loader jumps), else the ELF's ``e_entry``; one hardware
breakpoint (it works under KVM, where software ones crash the guest here).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from lhvdbg.errors import GdbError, MachineError

if TYPE_CHECKING:
    from lhvdbg.machine.session import Session, StopEvent

__all__ = ["DEFAULT_BOOT_TIMEOUT", "BootResult", "enter_kernel", "entry_point", "run_to_entry"]

DEFAULT_BOOT_TIMEOUT = 60.0


@dataclass(frozen=True)
class BootResult:
    """``entered``: the entry was reached (``stop`` is None then); otherwise ``stop`` is
    how the run ended before it (a timeout: the kernel never started; a shutdown or an
    exit: the loader itself failed)."""

    entered: bool
    entry: int | None
    stop: StopEvent | None = None
    elapsed: float = 0.0


def entry_point(session: Session) -> int | None:
    """Where the loader jumps: the a.out kludge's ``entry_addr``, else ``e_entry`` —
    moved to its physical address when its PT_LOAD segment's ``p_paddr`` differs from
    ``p_vaddr`` (GRUB does that translation; paging is off at a multiboot entry)."""
    info = session.kernel_info
    if info is None:
        return None
    header = info.multiboot
    if header is not None and header.aout_kludge and header.entry_addr is not None:
        return header.entry_addr
    entry = info.entry
    for seg in info.segments:  # a higher-half kernel: the loader jumps to the physical
        if seg.contains(entry) and seg.paddr != seg.vaddr:  # address (paging is off)
            return seg.paddr + entry - seg.vaddr
    return entry or None


def run_to_entry(
    session: Session, *, timeout: float, poll: Callable[[], None] | None = None
) -> BootResult:
    """Continue until the kernel's entry point (at most ``timeout`` seconds); ``poll`` as
    for ``Session.cont``."""
    entry = entry_point(session)
    if entry is None:  # nothing to stop at (no kernel file): the limit counts from start
        return BootResult(True, None)
    number = session.break_at(entry, hardware=True, internal=True)
    try:
        event = session.cont(timeout=timeout, poll=poll)
    finally:
        if session.alive and number in session.breakpoint_numbers():
            with contextlib.suppress(GdbError, MachineError):
                session.delete(number)
    if event.reason == "breakpoint" and event.address == entry:
        return BootResult(True, entry, elapsed=event.elapsed)
    if event.reason == "timeout":
        detail = f"the kernel's entry {entry:#x} not reached within {timeout:g} s"
        event = replace(event, detail=detail)
    return BootResult(False, entry, event, event.elapsed)


def enter_kernel(session: Session, *, timeout: float = DEFAULT_BOOT_TIMEOUT) -> None:
    """:func:`run_to_entry` for commands whose limits count from the kernel's entry and
    that need it reached: TargetTimeout when it never was, MachineError when the guest
    ended (or reset) first."""
    from lhvdbg.errors import TargetTimeout

    boot = run_to_entry(session, timeout=timeout)
    if boot.stop is None:
        return
    if boot.stop.reason == "timeout":
        raise TargetTimeout(f"the kernel never started: {boot.stop.detail}")
    raise MachineError(f"the guest ended before its kernel started: {boot.stop.detail}")
