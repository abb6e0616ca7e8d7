"""Record, replay, and step back (QEMU's deterministic record/replay, docs/system/replay.rst).

A recording ``FILE`` is three files: ``FILE`` (QEMU's event log, ``-icount
shift=auto,rr=record,rrfile=FILE``), ``FILE.qcow2`` (an empty qcow2 image made with
``qemu-img``, where QEMU keeps the ``init`` snapshot reverse execution goes back to:
``rrsnapshot=init``) and ``FILE.json`` (how the machine was launched: a replay must
have the very same devices, kernel and command line).

Reverse execution. ``reverse-stepi`` is gdb's, through the gdbstub (QEMU loads the
snapshot and replays to one instruction before). gdb's ``reverse-continue`` stalls more
often than not on this machine (QEMU 7.2.22 and 10.0.2, with a breakpoint or a
watchpoint), so :func:`reverse_continue` and :func:`last_write` search *forward*
instead, which the recording makes exact: HMP ``info replay`` gives the instruction
count, ``replay_seek`` goes back to the start (and later to the place found), and
ordinary breakpoints and watchpoints run forward up to the count where the search began.
Measured on the firmware: QEMU 7.2.22 all of it; QEMU 10.0.2 ``last-write`` and
``reverse-stepi`` (its replay also stalled once running forward to a breakpoint). KVM
cannot record (record/replay needs TCG's instruction counting).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from lhvdbg.errors import LhvdbgError, TargetTimeout, ToolMissingError, UsageError

if TYPE_CHECKING:
    from lhvdbg.machine.launch import LaunchConfig
    from lhvdbg.machine.session import Session
    from lhvdbg.machine.stops import StopEvent

SNAPSHOT_NAME = "init"
_CONFIG_FIELDS = ("arch", "memory_mb", "append", "debug_exit", "qemu_system", "qemu")
_TABLE_RE = re.compile(r"^(gdt|idt)\[(0x[0-9a-fA-F]+|\d+)\]$")
_DTR = re.compile(r"^(GDT|IDT)=\s+([0-9a-f]+) ([0-9a-f]+)", re.M)
_TR = re.compile(r"^TR =([0-9a-f]+) ([0-9a-f]+) ([0-9a-f]+)", re.M)


@dataclass(frozen=True)
class Recording:
    """The files of one recording."""

    log: Path

    @property
    def image(self) -> Path:
        return self.log.with_name(self.log.name + ".qcow2")

    @property
    def meta(self) -> Path:
        return self.log.with_name(self.log.name + ".json")

    def icount_args(self, mode: str) -> tuple[str, ...]:
        """QEMU's arguments for ``record`` or ``replay`` mode."""
        return (
            "-icount",
            f"shift=auto,rr={mode},rrfile={self.log},rrsnapshot={SNAPSHOT_NAME}",
            "-drive",
            f"file={self.image},if=none,id=rrdisk",
        )


def record_config(config: LaunchConfig, path: Path) -> LaunchConfig:
    """``config`` set up to record into ``path`` (makes ``path.qcow2`` and ``path.json``)."""
    if config.resolved_accel() != "tcg":
        raise UsageError("record/replay needs TCG (it counts instructions; KVM cannot)")
    kernel = config.kernel_path()
    if kernel is None:
        raise UsageError("record a -kernel boot (a CD-ROM is a disk image replay would share)")
    qemu_img = shutil.which("qemu-img")
    if qemu_img is None:
        raise ToolMissingError("qemu-img not found: install qemu-utils (Debian package)")
    rec = Recording(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rec.image.unlink(missing_ok=True)
    done = subprocess.run(
        [qemu_img, "create", "-f", "qcow2", str(rec.image), "1M"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise UsageError(f"qemu-img create {rec.image} failed: {done.stderr.strip()}")
    meta = {name: getattr(config, name) for name in _CONFIG_FIELDS}
    meta["kernel"] = str(kernel.resolve())
    meta["symbols"] = str(config.symbols) if config.symbols else None
    meta["extra_args"] = list(config.extra_args)
    rec.meta.write_text(json.dumps(meta, indent=2) + "\n")
    return replace(config, extra_args=(*config.extra_args, *rec.icount_args("record")))


def replay_config(path: Path, *, qemu: str | None = None) -> LaunchConfig:
    """The configuration that replays the recording at ``path`` (UsageError when a file
    is missing or unreadable)."""
    from lhvdbg.machine.launch import LaunchConfig

    rec = Recording(path)
    for needed in (rec.log, rec.image, rec.meta):
        if not needed.is_file():
            raise UsageError(f"not a recording: {needed} is missing (make one: lhvdbg record)")
    try:
        meta = json.loads(rec.meta.read_text())
        fields = {name: meta[name] for name in _CONFIG_FIELDS}
        kernel = Path(meta["kernel"])
        extra = tuple(meta.get("extra_args") or ())
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{rec.meta}: not a recording's description ({exc})") from None
    if qemu is not None:
        fields["qemu"] = qemu
    symbols = Path(meta["symbols"]) if meta.get("symbols") else None
    return LaunchConfig(
        kernel=kernel, symbols=symbols, extra_args=(*extra, *rec.icount_args("replay")), **fields
    )


def _reverse(session: Session, command: str, timeout: float) -> StopEvent:
    """Run one reverse MI command and wait for its stop."""
    from lhvdbg.machine.runstate import Runstate

    session.refresh_runstate()
    if session.runstate not in (Runstate.STOPPED, Runstate.SHUTDOWN):
        raise UsageError(f"{command}: the session is {session.runstate.value}")
    gdb = session.gdb
    gdb.drain_stopped()
    started = time.monotonic()
    session.set_runstate(Runstate.RUNNING)
    gdb.command(command)
    record = gdb.wait_stopped(timeout)
    if record is None:
        with contextlib.suppress(LhvdbgError):
            session.interrupt()
        raise TargetTimeout(
            f"{command}: no stop within {timeout:g} s (QEMU {session.qemu_version}'s "
            "reverse execution stalled)"
        )
    return session._stopped(record, time.monotonic() - started)


def reverse_stepi(session: Session, count: int = 1, *, timeout: float = 30.0) -> StopEvent:
    """Step ``count`` instructions backwards."""
    event: StopEvent | None = None
    for _ in range(count):
        event = _reverse(session, "-exec-step-instruction --reverse", timeout)
        if event.reason != "step":
            break
    assert event is not None
    return event


def reverse_continue(session: Session, *, timeout: float = 30.0) -> StopEvent:
    """Go back to the previous breakpoint hit (or the recording's start).

    gdb's own reverse-continue stalls on QEMU here more often than not (7.2 and 10), so
    this runs forward from the start instead (``replay_seek 0``, the breakpoints set,
    the instruction count of each hit before this point noted) and seeks to the last
    hit: the same place, found deterministically."""
    from lhvdbg.machine.stops import StopEvent

    end = icount(session)
    started = time.monotonic()
    seek(session, 0)
    last: tuple[int, StopEvent] | None = None
    while True:
        left = timeout - (time.monotonic() - started)
        if left <= 0:
            seek(session, end)
            raise TargetTimeout(f"reverse-continue: not done in {timeout:g} s")
        event = session.cont(timeout=left)
        if event.reason != "breakpoint":
            break
        now = icount(session)
        if now >= end:
            break
        last = (now, event)
    if last is None:
        seek(session, 0)
        return StopEvent("signal", session.pc(), detail="no-history: back at the recording's start")
    count, event = last
    seek(session, count)
    return replace(event, detail=f"{event.detail} (going back; instruction count {count})")


@dataclass(frozen=True)
class Target:
    """What ``last-write`` watches: ``label``, ``address`` and ``size`` in bytes."""

    label: str
    address: int
    size: int


def resolve_target(session: Session, text: str) -> Target:
    """``0x1000``/``symbol[+off]`` (8 bytes), ``gdt[N]`` (8), ``idt[N]`` (a gate), or
    ``tss.FIELD`` (the field of the TSS that TR points to)."""
    text = text.strip()
    if m := _TABLE_RE.match(text):
        index = int(m[2], 0)
        regs = session.hmp("info registers")
        found = {d[1]: int(d[2], 16) for d in _DTR.finditer(regs)}
        if m[1] == "gdt":
            return Target(text, found.get("GDT", 0) + 8 * index, 8)
        gate = 16 if session.arch == "amd64" else 8
        return Target(text, found.get("IDT", 0) + gate * index, gate)
    if text.startswith("tss."):
        from lhvdbg.x86.tss import tss_layout

        name = text[4:]
        layout = tss_layout("ia32e" if session.arch == "amd64" else "legacy")
        if not layout.has_field(name):
            raise UsageError(f"no TSS field {name!r} (fields: {', '.join(layout.field_names)})")
        field = layout.field(name)
        low, high = field.pieces[0][0], field.pieces[-1][1]
        m2 = _TR.search(session.hmp("info registers"))
        base = int(m2[2], 16) if m2 else 0
        return Target(text, base + low // 8, (high - low + 1) // 8)
    if text.lower() in session.register_numbers():
        raise UsageError(
            f"last-write {text}: a register is not memory a watchpoint can watch; use reverse-stepi"
        )
    return Target(text, session.resolve(text), 8)


@dataclass(frozen=True)
class LastWrite:
    """The store that last wrote ``target`` before the point where the search began."""

    target: Target
    found: bool
    rip: int | None = None
    symbol: str = ""
    instruction: str = ""
    old: bytes = b""
    new: bytes = b""
    detail: str = ""

    def to_dict(self) -> dict[str, object]:
        """JSON form."""
        return {
            "target": self.target.label,
            "address": f"{self.target.address:#x}",
            "size": self.target.size,
            "found": self.found,
            "rip": None if self.rip is None else f"{self.rip:#x}",
            "symbol": self.symbol,
            "instruction": self.instruction,
            "old": self.old.hex(),
            "new": self.new.hex(),
            "detail": self.detail,
        }


def _instruction(session: Session, address: int) -> str:
    """The instruction at ``address`` as gdb disassembles it."""
    reply = session.gdb.command(f"-data-disassemble -s {address:#x} -e {address + 16:#x} -- 0")
    lines = reply.payload.get("asm_insns") if isinstance(reply.payload, dict) else None
    if isinstance(lines, list) and lines and isinstance(lines[0], dict):
        return str(lines[0].get("inst", ""))
    return ""


_ICOUNT = re.compile(r"instruction count = (\d+)")


def icount(session: Session) -> int:
    """The replay's instruction count now (HMP ``info replay``)."""
    m = _ICOUNT.search(session.hmp("info replay"))
    if m is None:
        raise UsageError("not replaying a recording (open one: lhvdbg shell --replay FILE)")
    return int(m[1])


def seek(session: Session, count: int) -> None:
    """Move the replay to instruction ``count`` (HMP ``replay_seek``: back to the
    snapshot, then forward) and make gdb forget the registers it cached."""
    reply = session.hmp(f"replay_seek {count}").strip()
    if reply:
        raise UsageError(f"replay_seek {count}: {reply}")
    # QEMU loads the snapshot, then runs the VM to the count behind gdb's back
    deadline = time.monotonic() + 30.0
    while icount(session) != count or "running" in session.hmp("info status"):
        if time.monotonic() > deadline:
            raise TargetTimeout(f"replay_seek {count}: the replay did not get there")
        time.sleep(0.01)
    session.gdb.drain_stopped()
    session.gdb.console("flushregs")


def last_write(session: Session, target: Target, *, timeout: float = 30.0) -> LastWrite:
    """Find the store that last wrote ``target`` before this point of the replay, and
    stop there (before it runs).

    Reverse-continue with a watchpoint never returns on QEMU 7.2 or 10 here, so the
    search runs forward instead, which the recording makes exact: note the instruction
    count N, seek to the recording's start, run with write watchpoints (at most 8 bytes
    each) up to N noting the count and the value after each write, then seek to just
    before the last one. The old value is read there, the new one after the store."""
    end = icount(session)
    here = session.pc()
    user_watchpoints = {
        int(str(row["number"])) for row in session.breakpoints() if row["type"] == "watchpoint"
    }
    seek(session, 0)
    numbers = [
        session.watch(target.address + off, min(8, target.size - off), internal=True)
        for off in range(0, target.size, 8)
    ]
    # the run ends back here (gdb may report the user's breakpoint at this address instead)
    back_here = session.break_at(here, internal=True)
    hits: list[tuple[int, bytes]] = []
    started = time.monotonic()
    try:
        # the user's watchpoints would stop the run, or stand for ours: gdb names one
        # watchpoint when two cover the same bytes
        with session.suspended(user_watchpoints):
            while True:
                left = timeout - (time.monotonic() - started)
                if left <= 0:
                    raise TargetTimeout(f"last-write {target.label}: not done in {timeout:g} s")
                event = session.cont(timeout=left)
                if event.reason != "breakpoint":
                    break
                now = icount(session)
                if now > end:
                    break
                if event.breakpoint in numbers:
                    hits.append((now, session.read_memory(target.address, target.size)))
                elif now >= end:
                    break
    finally:
        if session.alive:
            for number in (*numbers, back_here):
                if number in session.breakpoint_numbers():
                    session.delete(number)
    if not hits:
        seek(session, end)
        return LastWrite(
            target, False, detail="nothing wrote it between the recording's start and here"
        )
    count, new = hits[-1]
    seek(session, count - 1)
    old = session.read_memory(target.address, target.size)
    rip = session.pc()
    return LastWrite(
        target,
        True,
        rip,
        session.symbolize(rip),
        _instruction(session, rip),
        old,
        new,
        detail=f"the last of {len(hits)} writes since the recording's start "
        f"(instruction count {count - 1})",
    )
