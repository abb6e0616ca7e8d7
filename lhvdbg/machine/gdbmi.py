"""gdb/MI client: token-matched commands over raw pipes, never a fixed-length read.

Each command is sent as ``<token><command>`` and the client reads with small timeouts
until the result record (``^done``/``^running``/``^connected``/``^error``/``^exit``)
carrying that token arrives. Async records (``*stopped``, ``*running``, ``=...``) and
stream output seen meanwhile are kept: ``*stopped`` records are queued for
:meth:`GdbMi.wait_stopped`. Several commands can be pipelined (:meth:`GdbMi.batch`): all
are written at once and the replies matched by token, so N reads cost one round trip.

Output is read straight from the pipe (non-blocking ``os.read``, whole lines) and parsed
by :mod:`lhvdbg.machine.mirecord`; the process is started here so it gets its own
process group and dies with its parent (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import subprocess
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lhvdbg.errors import GdbError, TargetTimeout
from lhvdbg.machine.mirecord import MiRecord, parse_line, parse_lines
from lhvdbg.machine.process import exit_status, is_running, kill_process_group, popen_owned, which

log = logging.getLogger(__name__)

RESULT_MESSAGES = frozenset({"done", "running", "connected", "error", "exit"})
#: Bytes asked of each read: os.read allocates all of it first, and 1 MiB (an mmap and
#: munmap each time) cost ~25 µs of CPU per read here against ~2 µs for 64 KiB.
READ_SIZE = 1 << 16
INTERRUPT_RESEND = 0.25  # seconds without a stop before -exec-interrupt is sent again
#: Commands that only read: every other command may change the machine (run it, write
#: memory or registers, set breakpoints...) and counts in :attr:`GdbMi.changes`.
READ_ONLY_COMMANDS = frozenset(
    {"-data-read-memory-bytes", "-data-list-register-values", "-data-list-register-names"}
)


#: The data directory lhvdbg gives its gdb: a ``gdb`` Python package that loads gdb's own
#: on first use (``gdb_data/python/gdb/__init__.py`` says why: ~30 ms of every start).
LEAN_DATA_DIRECTORY = Path(__file__).resolve().with_name("gdb_data")


def system_data_directory(exe: str) -> Path:
    """Where gdb's own data directory is for the binary ``exe`` (``<prefix>/share/gdb``)."""
    return Path(os.path.realpath(exe)).parent.parent / "share" / "gdb"


def lean_data_directory(exe: str) -> Path | None:
    """:data:`LEAN_DATA_DIRECTORY` when gdb ``exe`` has its Python package where its
    binary says (then the lean package can load it); None: gdb keeps its own."""
    package = Path("python", "gdb", "__init__.py")
    if (system_data_directory(exe) / package).is_file() and (
        LEAN_DATA_DIRECTORY / package
    ).is_file():
        return LEAN_DATA_DIRECTORY
    return None


@dataclass(frozen=True)
class MiResult:
    """The result record of one command and the other records seen while waiting."""

    command: str
    token: int
    message: str  # "done", "running", "connected", "exit"
    payload: dict[str, Any]
    records: tuple[MiRecord, ...] = field(default_factory=tuple)

    def console(self) -> str:
        """The console stream output that came with the command (CLI text)."""
        return "".join(str(r.payload) for r in self.records if r.type == "console" and r.payload)


@dataclass(frozen=True)
class PendingBatch:
    """Commands written by :meth:`GdbMi.send` whose replies are not collected yet."""

    commands: tuple[str, ...]
    tokens: tuple[int, ...]


def parse_mi_lines(text: str) -> list[MiRecord]:
    """Parse raw MI output (several lines) into records; ``(gdb)`` prompts are dropped."""
    return parse_lines(text)


class MiMatcher:
    """Token bookkeeping, separate from I/O so recorded output can test it.

    :meth:`feed` takes parsed records in arrival order; results with a known token are
    stored for :meth:`take`; ``*stopped`` records are queued; everything else is kept in
    ``others`` until the next result collects it.
    """

    def __init__(self) -> None:
        self.results: dict[int, tuple[MiRecord, tuple[MiRecord, ...]]] = {}
        self.stopped: deque[MiRecord] = deque()
        self.others: list[MiRecord] = []
        self.exited = False
        self.running = False

    def feed(self, records: Iterable[MiRecord]) -> None:
        """Account for newly read records."""
        for rec in records:
            if rec.is_result and rec.token is not None:
                self.results[rec.token] = (rec, tuple(self.others))
                self.others = []
                if rec.message == "running":
                    self.running = True
                elif rec.message == "exit":
                    self.exited = True
            elif rec.is_stopped:
                self.running = False
                self.stopped.append(rec)
            else:
                if rec.type == "notify" and rec.message == "running":
                    self.running = True
                self.others.append(rec)

    def take(self, token: int) -> tuple[MiRecord, tuple[MiRecord, ...]] | None:
        """The result record for ``token`` (and its companions) if it has arrived."""
        return self.results.pop(token, None)


def result_or_raise(
    command: str, token: int, found: tuple[MiRecord, tuple[MiRecord, ...]]
) -> MiResult:
    """A MiResult, or GdbError carrying the command and gdb's message for ``^error``."""
    rec, companions = found
    payload = rec.payload if isinstance(rec.payload, dict) else {}
    if rec.message == "error":
        msg = str(payload.get("msg", "unknown error"))
        raise GdbError(
            f"gdb: {command.split()[0]}: {msg.splitlines()[0] if msg else msg}",
            command=command,
            reply=msg,
        )
    return MiResult(command, token, str(rec.message), payload, companions)


class GdbMi:
    """A gdb process in MI mode (``gdb --nx --quiet --interpreter=mi3``)."""

    def __init__(
        self,
        gdb_path: str = "gdb",
        *,
        stderr_path: Path | None = None,
        timeout: float = 10.0,
    ) -> None:
        """Start gdb (own process group, dies with this process); ToolMissingError if
        it is not installed."""
        exe = which(gdb_path, "gdb (Debian package gdb)")
        self.argv = [exe, "--nx", "--quiet", "--interpreter=mi3"]
        env = None
        lean = lean_data_directory(exe)
        if lean is not None:
            self.argv.insert(1, f"--data-directory={lean}")
            env = {**os.environ, "LHVDBG_GDB_DATA_DIRECTORY": str(system_data_directory(exe))}
        self._stderr_file = open(stderr_path or os.devnull, "wb")  # noqa: SIM115
        self.process = popen_owned(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr_file,
            env=env,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self._fd = self.process.stdout.fileno()
        os.set_blocking(self._fd, False)
        self._buffer = bytearray()  # the start of a line not ended yet
        self._matcher = MiMatcher()
        self._next_token = 1
        self.timeout = timeout
        self.transcript: deque[str] = deque(maxlen=200)  # recent lines, for errors
        self.changes = 0  # commands sent that may have changed the machine (not reads)
        self._closed = False

    @property
    def pid(self) -> int:
        """gdb's process id."""
        return self.process.pid

    @property
    def alive(self) -> bool:
        """Whether the gdb process is still running."""
        return is_running(self.process)

    @property
    def running(self) -> bool:
        """Whether gdb believes the target is running (``*running`` seen, no stop yet)."""
        return self._matcher.running

    # --- I/O ----------------------------------------------------------------------

    def _send(self, lines: Sequence[str]) -> None:
        data = "".join(line + "\n" for line in lines).encode()
        for line in lines:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("--> %s", line)
            self.transcript.append("--> " + line)
        try:
            assert self.process.stdin is not None
            self.process.stdin.write(data)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise GdbError(
                f"gdb is gone (exit status {exit_status(self.process)})", command=lines[0]
            ) from exc

    def _pump(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for output and parse its whole lines; False when
        nothing came (or gdb's output ended)."""
        ready, _, _ = select.select([self._fd], [], [], max(0.0, timeout))
        if not ready:
            return False
        try:
            chunk = os.read(self._fd, READ_SIZE)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not chunk:
            time.sleep(0.001)  # EOF: gdb is exiting (the caller checks that it did)
            return False
        last = chunk.rfind(b"\n")
        if last < 0:  # the middle of a long line (a big memory read)
            self._buffer += chunk
            return True
        text = (self._buffer + chunk[: last + 1]).decode("utf-8", "replace")
        self._buffer = bytearray(chunk[last + 1 :])
        records = []
        for line in text.splitlines():
            rec = parse_line(line)
            if rec is None:
                continue
            records.append(rec)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("<-- %s", line)
            self.transcript.append("<-- " + line)
        self._matcher.feed(records)
        return True

    def _unanswered(self, command: str) -> TargetTimeout:
        return TargetTimeout(
            f"gdb did not answer {command.split()[0]} in time",
            command=command,
            backend="gdb",
            transcript="\n".join(self.transcript),
        )

    def _dead_error(self, command: str) -> GdbError:
        return GdbError(
            f"gdb exited unexpectedly (status {exit_status(self.process)}) "
            f"during {command.split()[0]}",
            command=command,
            transcript="\n".join(self.transcript),
        )

    # --- commands -----------------------------------------------------------------

    def _token(self) -> int:
        token = self._next_token
        self._next_token += 1
        return token

    def command(self, command: str, *, timeout: float | None = None) -> MiResult:
        """Send one MI command and wait for its token's result; GdbError (with
        ``command`` and ``reply``) on ``^error``, gdb exiting, or timeout."""
        return self.batch([command], timeout=timeout)[0]

    def console(self, command: str, *, timeout: float | None = None) -> MiResult:
        """Run a CLI command through ``-interpreter-exec console``."""
        quoted = command.replace("\\", "\\\\").replace('"', '\\"')
        return self.command(f'-interpreter-exec console "{quoted}"', timeout=timeout)

    def batch(
        self, commands: Sequence[str], *, timeout: float | None = None, check: bool = True
    ) -> list[MiResult]:
        """Pipeline ``commands`` (all written at once) and return their results in order.

        With ``check`` (default) the first ``^error`` raises GdbError after every reply
        has been collected; without it, failed commands give a MiResult whose
        ``message`` is ``"error"``.
        """
        return self.finish(self.send(commands), timeout=timeout, check=check)

    def send(self, commands: Sequence[str]) -> PendingBatch:
        """Write ``commands`` (tokened) now and return at once; :meth:`finish` collects
        the replies later, so the caller can work while gdb does."""
        if self._closed:
            raise GdbError("gdb session is closed", command=commands[0] if commands else "")
        tokens = tuple(self._token() for _ in commands)
        self.changes += sum(c.partition(" ")[0] not in READ_ONLY_COMMANDS for c in commands)
        self._send([f"{t}{c}" for t, c in zip(tokens, commands, strict=True)])
        return PendingBatch(tuple(commands), tokens)

    def finish(
        self, pending: PendingBatch, *, timeout: float | None = None, check: bool = True
    ) -> list[MiResult]:
        """The results of a :meth:`send`, in order (``check`` as in :meth:`batch`);
        ``timeout`` counts from this call."""
        commands, tokens = pending.commands, pending.tokens
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        found: dict[int, tuple[MiRecord, tuple[MiRecord, ...]]] = {}
        while True:
            for t in tokens:
                if t not in found:
                    got = self._matcher.take(t)
                    if got is not None:
                        found[t] = got
            if len(found) == len(tokens):
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                missing = next(c for t, c in zip(tokens, commands, strict=True) if t not in found)
                raise self._unanswered(missing)
            if not self._pump(min(remaining, 0.05)) and not self.alive:
                raise self._dead_error(commands[0])
        results: list[MiResult] = []
        first_error: GdbError | None = None
        for t, c in zip(tokens, commands, strict=True):
            try:
                results.append(result_or_raise(c, t, found[t]))
            except GdbError as exc:
                if first_error is None:
                    first_error = exc
                rec, comp = found[t]
                payload = rec.payload if isinstance(rec.payload, dict) else {}
                results.append(MiResult(c, t, "error", payload, comp))
        if first_error is not None and check:
            raise first_error
        return results

    # --- run state ----------------------------------------------------------------

    def pending_stopped(self) -> MiRecord | None:
        """A ``*stopped`` record already received and not yet consumed, if any."""
        self._pump(0)
        return self._matcher.stopped.popleft() if self._matcher.stopped else None

    def wait_stopped(self, timeout: float, *, poll: float = 0.05) -> MiRecord | None:
        """The next ``*stopped`` record, or None after ``timeout`` seconds. GdbError if
        gdb exits meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            if self._matcher.stopped:
                return self._matcher.stopped.popleft()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if not self._pump(min(remaining, poll)) and not self.alive:
                raise self._dead_error("wait for *stopped")

    def resume_and_wait(self, command: str, timeout: float) -> MiRecord | None:
        """Send ``command`` that resumes the target (``-exec-step-instruction``) and
        return the ``*stopped`` record that ends its run, None after ``timeout``
        seconds; GdbError for ``^error`` or gdb exiting. One loop for the reply and
        the stop: a single step costs about a millisecond, and the bookkeeping of
        :meth:`command` then :meth:`wait_stopped` showed in it."""
        token = self.send([command]).tokens[0]
        matcher = self._matcher
        deadline = time.monotonic() + timeout
        answered = False
        while True:
            if not answered:
                found = matcher.take(token)
                if found is not None:
                    result_or_raise(command, token, found)
                    answered = True
            if answered and matcher.stopped:
                return matcher.stopped.popleft()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if answered:
                    return None
                raise self._unanswered(command)
            if not self._pump(min(remaining, 0.05)) and not self.alive:
                raise self._dead_error(command)

    def drain_stopped(self) -> None:
        """Forget queued ``*stopped`` records."""
        self._pump(0)
        self._matcher.stopped.clear()

    def interrupt(self) -> None:
        """Send ``-exec-interrupt`` (the ``*stopped`` follows asynchronously)."""
        self.command("-exec-interrupt")

    def interrupt_and_wait(
        self, target_alive: Callable[[], bool], timeout: float = 5.0
    ) -> MiRecord | None:
        """Interrupt the running target and return its ``*stopped``; None when the
        target went away (``target_alive()`` false) first; TargetTimeout after
        ``timeout`` seconds without a stop.

        The interrupt is sent again every ``INTERRUPT_RESEND`` seconds while gdb still
        has the target running: QEMU's gdbstub drops a Ctrl-C that arrives while the VM
        is stopped for an event gdb then resumes from by itself (a watchpoint hit that
        left the value unchanged; QEMU 7.2's TCG reports one for every write to the
        watched page), so one request can be lost and gdb runs on."""
        try:
            self.interrupt()
        except GdbError:
            if not target_alive():
                return None
            raise
        deadline = time.monotonic() + timeout
        resend = time.monotonic() + INTERRUPT_RESEND
        while time.monotonic() < deadline:
            record = self.wait_stopped(0.05)
            if record is not None:
                return record
            if not target_alive():
                return None
            if self.running and time.monotonic() >= resend:
                log.debug("no stop after -exec-interrupt: sending it again")
                with contextlib.suppress(GdbError):  # the stop may have come meanwhile
                    self.interrupt()
                resend = time.monotonic() + INTERRUPT_RESEND
        raise TargetTimeout(
            "gdb did not stop the guest after -exec-interrupt", command="-exec-interrupt"
        )

    def close(self, *, polite: bool = True, reap: bool = True) -> None:
        """Quit gdb (``-gdb-exit``, up to 0.5 s), then SIGTERM/SIGKILL its process group.
        ``polite=False`` skips the quit (gdb takes ~8 ms to exit; it holds nothing to save
        once the target is gone); ``reap=False`` does not wait for it to die (see
        :func:`~lhvdbg.machine.process.kill_process_group`). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if polite and self.alive:
            try:
                self._send(["-gdb-exit"])
                deadline = time.monotonic() + 0.5
                while is_running(self.process) and time.monotonic() < deadline:
                    time.sleep(0.001)
            except GdbError:
                pass
        kill_process_group(self.process, grace=1.0 if polite else 0.0, reap=reap)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._stderr_file.close()


def raise_first_error(results: Sequence[MiResult]) -> None:
    """GdbError (command, gdb's message) for the first failed result, if any."""
    for res in results:
        if res.message == "error":
            msg = str(res.payload.get("msg", "unknown error"))
            raise GdbError(
                f"gdb: {res.command.split()[0]}: {(msg.splitlines() or [''])[0]}",
                command=res.command,
                reply=msg,
            )
