"""Why the guest stopped: gdb's ``*stopped`` records decoded into :class:`StopEvent`s.

Pure: :func:`decode_stop` reads one MI record and nothing else. What it needs from the
live session comes in as plain callables (a symbolizer for the detail line, and whether
QEMU reports the guest shut down, asked only for a signal stop), so it is tested offline
on recorded gdb output (``tests/fixtures/mi``). Breakpoint hit counts are kept by the
breakpoint table from :func:`breakpoint_hit`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from lhvdbg.errors import MachineError
from lhvdbg.machine.mirecord import MiRecord

log = logging.getLogger(__name__)

StopReason = Literal[
    "breakpoint",  # a breakpoint or watchpoint was hit
    "vector",  # run_to_vector reached the handler IDT[v] gives
    "step",  # stepi finished
    "signal",  # gdb reported a signal it did not cause on our request
    "interrupted",  # interrupt() stopped a running guest
    "timeout",  # cont/run_to_vector ran out of time; the guest was interrupted
    "exited",  # QEMU exited (isa-debug-exit: see StopEvent.guest_exit_value)
    "shutdown",  # triple fault / guest shutdown: QEMU paused for post-mortem
]

WATCH_REASONS = ("watchpoint-trigger", "read-watchpoint-trigger", "access-watchpoint-trigger")
SHUTDOWN_STATUSES = ("shutdown", "guest-panicked", "internal-error")


@dataclass(frozen=True)
class StopEvent:
    """Why and where the guest stopped (or ended).

    ``address`` is the instruction pointer when known; ``breakpoint`` the gdb breakpoint
    number that was hit; ``exit_code`` QEMU's process exit code for ``exited``
    (isa-debug-exit makes it ``(value << 1) | 1``; see ``guest_exit_value``); ``detail`` a
    short human line; ``vector`` the vector of a ``vector`` stop; ``signal`` the gdb signal
    name of a ``signal``/``interrupted`` stop; ``elapsed`` seconds the guest ran.
    """

    reason: StopReason
    address: int | None = None
    breakpoint: int | None = None
    exit_code: int | None = None
    detail: str = ""
    vector: int | None = None
    signal: str | None = None
    elapsed: float = 0.0

    @property
    def guest_exit_value(self) -> int | None:
        """The value the guest wrote to isa-debug-exit (``exit_code >> 1``), if it did."""
        if self.reason != "exited" or self.exit_code is None or not self.exit_code & 1:
            return None
        return self.exit_code >> 1

    @property
    def stopped(self) -> bool:
        """Whether the CPU is stopped and can be inspected (not exited)."""
        return self.reason != "exited"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (addresses as hex strings)."""
        return {
            "reason": self.reason,
            "address": None if self.address is None else f"{self.address:#x}",
            "breakpoint": self.breakpoint,
            "exit_code": self.exit_code,
            "guest_exit_value": self.guest_exit_value,
            "vector": self.vector,
            "signal": self.signal,
            "detail": self.detail,
            "elapsed": round(self.elapsed, 6),
        }


def int_or_none(value: object) -> int | None:
    """``int(value, 0)`` for MI numbers (``"0x102280"``, ``"7"``); None otherwise."""
    if value is None:
        return None
    try:
        return int(str(value), 0)
    except ValueError:
        return None


def where(address: int | None, symbolize: Callable[[int], str]) -> str:
    """``kernel_main+0x4 (0x102284)``, or the bare address when there is no symbol."""
    if address is None:
        return "?"
    sym = symbolize(address)
    return f"{address:#x}" if sym.startswith("0x") else f"{sym} ({address:#x})"


def _payload(record: MiRecord) -> dict[str, Any]:
    return record.payload if isinstance(record.payload, dict) else {}


def breakpoint_hit(record: MiRecord) -> tuple[int, bool] | None:
    """``(number, deleted)`` for a breakpoint/watchpoint stop (``deleted``: a temporary
    breakpoint gdb removed as it hit); None for any other stop."""
    payload = _payload(record)
    reason = payload.get("reason")
    if reason == "breakpoint-hit":
        return int(payload.get("bkptno", 0)), payload.get("disp") == "del"
    if reason in WATCH_REASONS:
        wpt = payload.get("wpt") or payload.get("hw-rwpt") or payload.get("hw-awpt") or {}
        return int(wpt.get("number", 0)), False
    return None


def is_step_over_sigtrap(record: MiRecord) -> bool:
    """A bare SIGTRAP: what QEMU's TCG reports for gdb's step over a breakpoint when a
    hardware watchpoint is set in the page that instruction writes."""
    payload = _payload(record)
    return payload.get("reason") == "signal-received" and payload.get("signal-name") == "SIGTRAP"


def decode_stop(
    record: MiRecord,
    *,
    elapsed: float = 0.0,
    symbolize: Callable[[int], str] = lambda a: f"{a:#x}",
    shutdown_seen: Callable[[], bool] = lambda: False,
) -> StopEvent:
    """The StopEvent of one ``*stopped`` record. ``symbolize`` names addresses in the
    detail line; ``shutdown_seen`` (QMP ``query-status`` in a session) is asked only for
    a signal stop that is not SIGQUIT (SIGQUIT always means the guest shut down)."""
    payload = _payload(record)
    frame = payload.get("frame") or {}
    address = int_or_none(frame.get("addr"))
    reason = str(payload.get("reason", ""))
    at = where(address, symbolize)
    if reason == "breakpoint-hit" or reason in WATCH_REASONS:
        hit = breakpoint_hit(record)
        number = hit[0] if hit else 0
        what = "breakpoint" if reason == "breakpoint-hit" else "watchpoint"
        verb = "hit" if reason == "breakpoint-hit" else "triggered"
        return StopEvent(
            "breakpoint", address, number, detail=f"{what} {number} {verb} at {at}", elapsed=elapsed
        )
    if reason == "end-stepping-range":
        return StopEvent("step", address, detail=f"at {at}", elapsed=elapsed)
    if reason != "signal-received" and reason:
        return StopEvent("signal", address, detail=f"{reason} at {at}", elapsed=elapsed)
    name = str(payload.get("signal-name", "")) or None
    if name == "SIGQUIT" or shutdown_seen():
        return StopEvent(
            "shutdown",
            address,
            signal=name,
            detail="the guest shut down (triple fault or reset): QEMU is paused",
            elapsed=elapsed,
        )
    if name == "SIGINT":
        return StopEvent(
            "interrupted", address, signal=name, detail=f"interrupted at {at}", elapsed=elapsed
        )
    return StopEvent(
        "signal", address, signal=name, detail=f"{name or 'stopped'} at {at}", elapsed=elapsed
    )


def exited_event(status: int | None, *, debug_exit: bool, elapsed: float = 0.0) -> StopEvent:
    """The ``exited`` StopEvent for QEMU's exit ``status`` (isa-debug-exit value named)."""
    detail = f"QEMU exited with status {status}"
    if status is not None and status & 1 and debug_exit and status > 1:
        detail += f" (isa-debug-exit value {status >> 1:#x})"
    return StopEvent("exited", exit_code=status, detail=detail, elapsed=elapsed)


def step_did_not_run(
    start: int | None, event: StopEvent, read: Callable[[int, int], bytes]
) -> bool:
    """A single step that ended at ``start``, where it began, on an instruction that
    cannot stay in place (``read(address, size)`` gives its bytes). QEMU's TCG (7.2 and
    10, more often under load) now and then ends a step before the instruction ran:
    gdb then reports it as the step (seen in a CI run: ``or $0x80000000, %eax``
    "stepped" to itself), as a bare SIGTRAP, or, when the step was gdb's step over the
    breakpoint there, as that breakpoint hit again (a traced ``mov cr3`` read the old
    CR3, a ``sti`` was hit twice in a row). The caller steps again."""
    late_trap = event.reason in ("step", "breakpoint") or (
        event.reason == "signal" and event.signal == "SIGTRAP"
    )
    if start is None or not late_trap or event.address != start:
        return False
    from lhvdbg.x86.insn_sites import may_stay_in_place  # (rare: not on the way to a start)

    try:
        code = read(start, 16)
    except MachineError:
        return False  # unknown bytes: the step may have been right
    if may_stay_in_place(code):
        return False
    log.debug("a step at %#x ended before the instruction ran: stepping again", start)
    return True
