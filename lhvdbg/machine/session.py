"""The live session: one QEMU (started with ``-S``) and one gdb, owned together.

QEMU and gdb start side by side; gdb connects to the gdbstub, a QMP client to the monitor
(Unix sockets in a private 0700 folder); neither process outlives the session (process
groups, ``PR_SET_PDEATHSIG``, a context manager). Only gdb controls run state; QMP shows
what the gdbstub cannot (hidden segment parts, PIC, LAPIC) and reports events.

This module keeps the life cycle, run control and reads; ``launch`` (configuration),
``workdir``, ``qemu``, ``runstate`` (state and ``require`` guard), ``stops`` (MI stop →
StopEvent), ``breakpoints``, ``registers``, ``memory`` and ``outputs`` hold the rest::

    with Session(LaunchConfig.for_variant("good")) as s:
        s.break_at("kernel_main")
        event = s.cont(timeout=5)
        snap = s.target.capture()
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from lhvdbg.errors import GdbError, MachineError, TargetTimeout
from lhvdbg.machine import launch, stops
from lhvdbg.machine.breakpoints import BreakpointTable, SessionBreakpoints
from lhvdbg.machine.launch import (
    DEFAULT_ARCH,
    DEFAULT_VARIANT,
    FIRMWARE_DIR_ENV,
    LaunchConfig,
    build_qemu_argv,
    firmware_dir,
    firmware_path,
    kvm_usable,
)  # fmt: skip
from lhvdbg.machine.memory import read_c_string, read_exact, read_readable
from lhvdbg.machine.outputs import SessionOutputs
from lhvdbg.machine.registers import SessionRegisters
from lhvdbg.machine.runstate import INSPECTABLE, LIVE, RUNNABLE, Runstate, require, state_after_stop
from lhvdbg.machine.stops import StopEvent
from lhvdbg.machine.vector import SessionVectorRuns
from lhvdbg.machine.workdir import SessionPaths
from lhvdbg.signals import release_signals

if TYPE_CHECKING:
    from lhvdbg.machine.gdbmi import GdbMi
    from lhvdbg.machine.live import LiveTarget
    from lhvdbg.machine.mirecord import MiRecord
    from lhvdbg.machine.monitor import HmpClient
    from lhvdbg.machine.qemu import QemuProcess
    from lhvdbg.machine.qmp import QmpClient
    from lhvdbg.state.snapshot import Snapshot
    from lhvdbg.x86.cpustate import Arch

__all__ = [  # what callers import from here (most of it lives in launch, stops, workdir)
    "DEFAULT_ARCH", "DEFAULT_VARIANT", "FIRMWARE_DIR_ENV", "LaunchConfig", "Runstate",
    "Session", "SessionPaths", "StopEvent", "build_qemu_argv", "firmware_dir",
    "firmware_path", "kvm_usable",
]  # fmt: skip

log = logging.getLogger(__name__)
S = Runstate
T = TypeVar("T")
KVM_STATUS_EVERY = 0.25  # seconds between QMP status checks while a KVM guest runs
STEP_RETRIES = 3  # a step that ended before its instruction ran is taken again this often


class Session(SessionBreakpoints, SessionRegisters, SessionOutputs, SessionVectorRuns):
    """QEMU (``-S``) and gdb/MI started side by side and connected; a context manager.
    Attributes: ``config``, ``accel``, ``qemu_path``, ``qemu_version`` (QMP's greeting),
    ``kernel``, ``kernel_info``, ``arch``, ``paths``, ``gdb``, ``qmp``, ``monitor``, ``target``
    (:class:`LiveTarget`), ``qemu_argv``, ``last_stop``, ``runstate``, ``notes`` (choices made
    for the user, e.g. hardware breakpoints under KVM). Errors: ToolMissingError, KernelError,
    QemuError (at start, with stderr; or died), StateError, TargetTimeout, GdbError, QmpError."""

    qemu_path: str
    qemu_version: str
    kernel: Path | None
    arch: Arch
    target: LiveTarget
    qemu_argv: list[str]
    last_stop: StopEvent | None

    def __init__(self, config: LaunchConfig, *, start_timeout: float = 10.0) -> None:
        """Check the kernel, start QEMU (paused) and gdb, connect QMP and the gdbstub."""
        self.config = config
        self.start_timeout = start_timeout
        self._qemu: QemuProcess | None = None
        self._gdb: GdbMi | None = None
        self._qmp: QmpClient | None = None
        self._hmp: HmpClient | None = None
        self._breakpoints = BreakpointTable()
        self._old_sigterm: Any = None
        self._clear()
        self._start()

    def _clear(self) -> None:
        self.notes: list[str] = []
        self._breakpoints.clear()
        self._register_numbers: dict[str, int] | None = None
        self._names: dict[int, str] = {}
        self._serial_offset = 0
        self.last_stop = None
        self._stop_version: object = None

    # --- life cycle -------------------------------------------------------------------

    def _start(self) -> None:
        """Start gdb, then QEMU, at once; while gdb initialises (the longest step) read
        the kernel's facts and connect QMP; then collect gdb's set-up replies, whose last
        command already connected it to the gdbstub."""
        from lhvdbg.machine.gdbmi import GdbMi, raise_first_error
        from lhvdbg.machine.process import sigterm_as_exit, which
        from lhvdbg.machine.qemu import QemuProcess

        config = self.config
        choice = launch.choose_kernel(config)
        self.kernel, self.arch, self.kernel_info = choice.kernel, choice.arch, None
        if choice.note:
            self.notes.append(choice.note)
        self.accel = config.resolved_accel()
        if config.accel == "auto":
            self.notes.append(f"--accel auto chose {self.accel}")
        self.qemu_path = launch.find_qemu(config)
        which("gdb", "gdb (Debian package gdb)")
        self.paths, held = SessionPaths.create_holding_signals()
        self.set_runstate(S.STARTING)
        try:
            release_signals(held)  # a SIGTERM held back ends here, cleaned up by close()
            self.qemu_argv = build_qemu_argv(
                config, self.paths, accel=self.accel, kernel=self.kernel, binary=self.qemu_path
            )
            self._old_sigterm = sigterm_as_exit()
            # gdb first: it takes longest to start. Its set-up is written now and runs as
            # soon as it is up; QEMU's gdbstub socket exists long before (~20 ms).
            gdb = self._gdb = GdbMi(stderr_path=self.paths.gdb_stderr, timeout=self.start_timeout)
            setup = launch.gdb_setup(config, choice.symbol_path, self.paths.gdb_socket)
            pending = gdb.send(setup)
            qemu = self._qemu = QemuProcess(self.qemu_argv, self.paths.qemu_stderr)
            # while QEMU starts (not before gdb and QEMU are spawned): live and the
            # snapshot model it imports are ~10-25 ms of imports
            from lhvdbg.machine.live import LiveTarget

            self.kernel_info = choice.read_info()
            self._qmp = qemu.connect_qmp(self.paths.qmp_socket, self.start_timeout)
            self._hmp = qemu.connect_hmp(self.paths.hmp_socket, self.start_timeout)
            self.qemu_version = self._qmp.qemu_version
            results = gdb.finish(pending, timeout=self.start_timeout, check=False)
            raise_first_error(results[:-1])
            if results[-1].message == "error":
                # QEMU was slower than gdb to open its socket: wait for it, connect again
                qemu.wait_for_socket(self.paths.gdb_socket, self.start_timeout)
                gdb.command(setup[-1], timeout=self.start_timeout)
            gdb.drain_stopped()
            self.target = LiveTarget(self)
            self.set_runstate(S.STOPPED)
        except BaseException:
            self.close()
            raise
        log.debug("session up: %s", " ".join(self.qemu_argv))

    def close(self, *, reap: bool = True) -> None:
        """Kill QEMU and gdb (SIGKILL to their process groups, reaped) and remove the
        private folder. Idempotent. Nothing is asked of them first: everything a session
        reports was read before, and a quit over QMP then waiting for QEMU to exit cost
        ~10 ms of every run. ``reap=False``, for a program about to end: killed, but the
        kernel's teardown of both (10-15 ms) is not waited for."""
        if self.runstate is S.CLOSED:
            return
        self.set_runstate(S.CLOSED)
        from lhvdbg.machine.process import kill_groups_now, restore_sigterm

        for client in (self._qmp, self._hmp):
            if client is not None:
                client.close()
        kill_groups_now([c.process for c in (self._qemu, self._gdb) if c is not None])
        if self._qemu is not None:
            self._qemu.kill(grace=0.0, reap=reap)
        if self._gdb is not None:
            self._gdb.close(polite=False, reap=reap)  # its target is gone: nothing to detach
        restore_sigterm(self._old_sigterm)
        self._old_sigterm = None
        shutil.rmtree(self.paths.directory, ignore_errors=True)

    def reset(self) -> None:
        """Restart QEMU and gdb with the same config (breakpoints are not kept)."""
        self.close()
        self._clear()
        self._start()

    @property
    def alive(self) -> bool:
        """Whether QEMU is still running (not exited, session not closed)."""
        return self.runstate is not S.CLOSED and self._qemu is not None and self._qemu.running()

    @property
    def gdb(self) -> GdbMi:
        """The gdb/MI client."""
        return _started(self._gdb)

    @property
    def qmp(self) -> QmpClient:
        """The QMP client."""
        return _started(self._qmp)

    @property
    def monitor(self) -> HmpClient:
        """The HMP client (QEMU's readline monitor: HMP without QMP's JSON)."""
        return _started(self._hmp)

    def refresh_runstate(self) -> None:
        """EXITED when QEMU's process is found gone (gdb dying is reported as GdbError by
        the first command written to it)."""
        if self.runstate in LIVE and self._qemu is not None and not self._qemu.running():
            self.set_runstate(S.EXITED)

    def backend_failed(self, exc: Exception, what: str) -> Exception | None:
        """QEMU's exit, when a gdb/QMP failure came from QEMU dying under the call."""
        qemu = self._qemu
        if self.runstate is not S.CLOSED and qemu is not None and qemu.wait_gone(0.3):
            self.set_runstate(S.EXITED)
            return qemu.gone_error(what)
        return None

    def state_reason(self) -> str:
        """How QEMU ended, for an EXITED session."""
        if self.runstate is S.EXITED and self._qemu is not None:
            return self._qemu.how_it_ended()
        return ""

    def _where(self, address: int | None) -> str:
        return stops.where(address, self.symbolize)

    def symbolize(self, address: int) -> str:
        """``name+0xoff`` when the kernel has a symbol at or below, else hex (each
        address named once per kernel: steps and stops revisit the same code)."""
        name = self._names.get(address)
        if name is None:
            info = self.kernel_info
            name = info.symbolize(address) if info is not None else f"{address:#x}"
            self._names[address] = name
        return name

    # --- run control (gdb only) -------------------------------------------------------

    def _record_stop(self, event: StopEvent) -> StopEvent:
        """The one place a stop changes the run state (and ``last_stop``)."""
        if event.reason == "shutdown" and self._qemu is not None and self.guest_powered_off():
            self.qmp.quit()  # finish the power-off: QEMU exits with the guest's status
            self._qemu.wait_gone(grace=5.0)
            return self._exited_event(event.elapsed)
        self.last_stop = event
        self.set_runstate(state_after_stop(event.reason, self.runstate))
        self._stop_version = self.machine_version() if self.runstate is S.STOPPED else None
        return event

    def _stopped(self, record: MiRecord, elapsed: float) -> StopEvent:
        hit = stops.breakpoint_hit(record)
        if hit is not None:
            self._breakpoints.note_hit(*hit)
        event = stops.decode_stop(
            record, elapsed=elapsed, symbolize=self.symbolize, shutdown_seen=self._shutdown_seen
        )
        return self._record_stop(event)

    def _shutdown_seen(self) -> bool:
        try:
            return str(self.qmp.status().get("status")) in stops.SHUTDOWN_STATUSES
        except MachineError:
            return False

    def _exited_event(self, elapsed: float) -> StopEvent:
        """The ``exited`` stop; QemuError when QEMU did not exit but was killed."""
        assert self._qemu is not None
        status = self._qemu.status()
        if status is not None and status < 0:
            self.set_runstate(S.EXITED)
            raise self._qemu.gone_error("continue")
        event = stops.exited_event(status, debug_exit=self.config.debug_exit, elapsed=elapsed)
        return self._record_stop(event)

    def _ended(self, exc: GdbError, elapsed: float) -> StopEvent:
        """The exited stop when gdb failed because QEMU exited meanwhile; else ``exc``."""
        if self._qemu is None or not self._qemu.wait_gone(0.3):
            raise exc
        return self._exited_event(elapsed)

    def _not_runnable(self) -> StopEvent | None:
        """What cont/stepi answer at once: ``exited`` or the shutdown stop; else None."""
        if self.runstate is S.EXITED:
            return self._exited_event(0.0)
        if self.runstate is S.SHUTDOWN and self.last_stop is not None:
            return self.last_stop  # a shut-down VM cannot run again (reset() restarts)
        return None

    @require(*RUNNABLE)
    def cont(self, *, timeout: float, poll: Callable[[], None] | None = None) -> StopEvent:
        """Continue until a stop, QEMU exiting, a triple fault, or ``timeout`` seconds
        (then interrupt and return ``reason="timeout"``). ``poll`` is called about every
        50 ms while the guest runs (e.g. to stream the serial output); an exception it
        raises leaves the guest running (``interrupt()`` stops it)."""
        done = self._not_runnable()
        if done is not None:
            return done
        gdb, qemu = self.gdb, self._qemu
        assert qemu is not None
        gdb.drain_stopped()
        started = time.monotonic()
        deadline = started + timeout
        off = self._step_off_breakpoint()
        if off is not None:
            return off
        # gdb steps over a breakpoint at the PC first (whatever stopped the guest there:
        # a hit, an interrupt, a step); with a hardware watchpoint in the page that
        # instruction writes, QEMU 7.2's TCG reports that step (or the stepi that ended
        # the last stop) as a bare SIGTRAP when the guest next runs
        last = self.last_stop
        stepping_over = (
            last is not None
            and (
                last.reason in ("breakpoint", "vector", "step")
                or self._breakpoints.has_breakpoint_at(last.address)
            )
            and self._breakpoints.has_watchpoint()
        )
        self.set_runstate(S.RUNNING)
        next_status = started + KVM_STATUS_EVERY
        try:
            gdb.command("-exec-continue")
        except GdbError as exc:
            return self._ended(exc, 0.0)
        while True:
            record = gdb.wait_stopped(max(0.0, min(0.05, deadline - time.monotonic())))
            elapsed = time.monotonic() - started
            if poll is not None:
                poll()
            if record is not None:
                if (
                    stepping_over
                    and stops.is_step_over_sigtrap(record)
                    and self._breakpoints.has_watchpoint()
                ):
                    log.debug("ignoring the SIGTRAP of a breakpoint step-over (watchpoint set)")
                    stepping_over = False
                    gdb.command("-exec-continue")
                    continue
                return self._stopped(record, elapsed)
            if not qemu.running():
                return self._exited_event(elapsed)
            if not gdb.alive:
                raise GdbError("continue: gdb exited unexpectedly", command="-exec-continue")
            if self.accel == "kvm" and time.monotonic() >= next_status:
                # KVM: QEMU pausing on a guest reset does not reach gdb (TCG reports it
                # as SIGQUIT); ask QMP now and then instead of waiting for the timeout
                next_status = time.monotonic() + KVM_STATUS_EVERY
                if self._shutdown_seen():
                    stopped = gdb.interrupt_and_wait(qemu.running)
                    if stopped is None:
                        return self._exited_event(elapsed)
                    return self._stopped(stopped, elapsed)
            if time.monotonic() >= deadline:
                return self._timed_out(timeout, elapsed)

    def _timed_out(self, timeout: float, elapsed: float) -> StopEvent:
        assert self._qemu is not None
        stopped = self.gdb.interrupt_and_wait(self._qemu.running)
        if stopped is None:
            return self._exited_event(elapsed)
        event = self._stopped(stopped, elapsed)
        if event.reason in ("interrupted", "signal") and event.signal == "SIGINT":
            at = self._where(event.address)
            event = replace(event, reason="timeout", detail=f"timeout after {timeout:g} s at {at}")
        return self._record_stop(event)

    @require(*RUNNABLE)
    def stepi(self, count: int = 1) -> StopEvent:
        """Execute ``count`` instructions (one MI command each)."""
        done = self._not_runnable()
        if done is not None:
            return done
        gdb = self.gdb
        event: StopEvent | None = None
        started = time.monotonic()
        gdb.drain_stopped()
        at, done_steps, retries = self._step_start(), 0, 0
        while done_steps < count:
            self.set_runstate(S.RUNNING)
            try:
                record = gdb.resume_and_wait("-exec-step-instruction", 5.0)
            except GdbError as exc:
                return self._ended(exc, time.monotonic() - started)
            if record is None:
                assert self._qemu is not None
                if not self._qemu.running():
                    return self._exited_event(time.monotonic() - started)
                raise TargetTimeout("stepi: the guest did not stop after one instruction")
            event = self._stopped(record, time.monotonic() - started)
            if retries < STEP_RETRIES and stops.step_did_not_run(at, event, self.read_memory):
                retries += 1
                continue
            retries = 0
            if event.reason != "step":
                break
            done_steps, at = done_steps + 1, event.address
        assert event is not None
        return event

    def _step_off_breakpoint(self) -> StopEvent | None:
        """TCG, at our breakpoint: ``stepi`` off it, as QEMU now and then cuts gdb's own step
        over it short (gdb reports the same hit again). The stop, unless a plain step."""
        if self.accel != "tcg" or not self._breakpoints.has_breakpoint_at(self._step_start()):
            return None
        event = self.stepi()
        return None if event.reason == "step" else event

    def _step_start(self) -> int | None:
        """The last stop's address if nothing but reads was sent since, else None."""
        last = self.last_stop
        same = self.runstate is S.STOPPED and self._stop_version == self.machine_version()
        return last.address if last and same else None

    @require(S.STOPPED, S.RUNNING, S.SHUTDOWN, S.EXITED)
    def interrupt(self) -> StopEvent:
        """Stop a running guest; when it is already stopped, report where it is. (RUNNING
        after Ctrl-C may mean gdb never resumed it, or it stopped meanwhile.)"""
        if self.runstate is S.EXITED:
            return self._exited_event(0.0)
        record = self.gdb.pending_stopped() if self.runstate is S.RUNNING else None
        if record is None and self.runstate is S.RUNNING and self.gdb.running:
            assert self._qemu is not None
            record = self.gdb.interrupt_and_wait(self._qemu.running)
            if record is None:
                return self._exited_event(0.0)
        if record is not None:
            return self._stopped(record, 0.0)
        self.set_runstate(state_after_stop("interrupted", self.runstate))
        pc = self._pc()
        return StopEvent("interrupted", pc, detail=f"already stopped at {self._where(pc)}")

    # --- reads (every one guarded the same way: the CPU must be stopped) -------------

    @require(*INSPECTABLE)
    def read_memory(self, address: int, size: int) -> bytes:
        """Guest linear memory through gdb (``-data-read-memory-bytes``)."""
        return read_exact(self.gdb, [(address, size)], check=True)[0] or b""

    @require(*INSPECTABLE)
    def read_memory_many(
        self, regions: list[tuple[int, int]], *, check: bool = True
    ) -> list[bytes | None]:
        """Several reads pipelined in one round trip; ``None`` for a read that failed or
        came back short when ``check`` is False (else GdbError)."""
        return read_exact(self.gdb, regions, check=check)

    @require(*INSPECTABLE)
    def read_memory_readable(self, regions: list[tuple[int, int]]) -> list[list[tuple[int, bytes]]]:
        """The readable parts of each ``(address, size)`` region as sorted runs
        (:func:`lhvdbg.machine.memory.read_readable`); unmapped memory is no error."""
        return read_readable(self.gdb, regions)

    @require(*INSPECTABLE)
    def write_memory(self, address: int, data: bytes) -> None:
        """Write guest linear memory through gdb."""
        self.gdb.command(f"-data-write-memory-bytes {address:#x} {data.hex()}")

    @require(*INSPECTABLE)
    def read_string(self, address: int, max_length: int = 256) -> str:
        """A NUL-terminated string at ``address`` (latin-1, at most ``max_length``)."""
        return read_c_string(self.gdb, address, max_length)

    @require(*INSPECTABLE)
    def machine_version(self) -> tuple[int, int, int]:
        """Equal values mean nothing can have changed the machine in between: no run state
        change (the guest did not run) and no gdb or QMP command but reads (what the
        live target's caches are keyed by)."""
        return (self.epoch, self.gdb.changes, self.qmp.changes + self.monitor.changes)

    @require(*INSPECTABLE)
    def hmp(self, command: str) -> str:
        """The text of an HMP command (``info registers``, ``info pic``...): from the
        HMP monitor, or through QMP for a line readline would not take as it is."""
        if self.monitor.accepts(command):
            return self.monitor.run(command)
        return self.qmp.hmp(command)

    @require(*INSPECTABLE)
    def capture(self, *, note: str = "") -> Snapshot:
        """Shortcut for ``self.target.capture(note=note)`` (guarded as the reads are)."""
        return self.target.capture(note=note)


def _started(client: T | None) -> T:
    if client is None:
        raise MachineError("session is not started")
    return client
