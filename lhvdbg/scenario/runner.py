"""Run scenarios on a live machine: the Python API (:class:`ScenarioRun`) and the runner.

:class:`ScenarioRun` wraps one :class:`~lhvdbg.machine.session.Session` and offers each
step as a method (``break_at``, ``cont``, ``stepi``, ``until_df``, ``wait_serial``,
``ticks``, ``capture``, ``diagnose``, ``diff``, ``run``, ``reset``) plus ``facts()`` and
``expect()``. The TOML runner (:func:`run_scenario`) is a loop over the same methods, so a
Python scenario can do everything a file can, and more::

    from lhvdbg.scenario.runner import ScenarioRun

    from lhvdbg.commands.scenario import registry_commands

    with ScenarioRun.launch(arch="amd64", variant="pic-unremapped",
                            commands=registry_commands()) as s:
        s.until_df()
        assert s.expect("pic.master.irq_base", equals=0x08).passed

Registry commands (``run`` steps, ``diagnose``, ``diff``) reach this module through a
:class:`CommandHost` the command layer supplies (``lhvdbg.commands.scenario``); their
results come back as data (:class:`CommandResult`), never by parsing what they printed.
This package imports neither ``lhvdbg.commands`` nor ``lhvdbg.ui``.

A failed assertion is a result, not an exception. Errors (QEMU died, unknown command)
are :class:`~lhvdbg.errors.LhvdbgError` and end the scenario as an error. Every step obeys
its time limit and the scenario's: ``stepi N`` checks the clock between instructions, and
a step over its limit fails with the time it took.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from lhvdbg.errors import LhvdbgError, ScenarioError, TargetTimeout, UsageError
from lhvdbg.scenario.assertions import Outcome, check
from lhvdbg.scenario.facts import snapshot_facts
from lhvdbg.scenario.model import OPERATORS, Expectation, Origin, Scenario, Step
from lhvdbg.scenario.policy import (
    ALLOW_HOST,
    HostUse,
    Writable,
    host_uses,
    run_line_host_use,
    run_line_runs_guest,
    writable_for,
)
from lhvdbg.scenario.stops import current_snapshot, note_stop, stop_facts
from lhvdbg.x86.vectors import DOUBLE_FAULT

if TYPE_CHECKING:
    from lhvdbg.machine.session import LaunchConfig, Session, StopEvent
    from lhvdbg.state.snapshot import Snapshot
    from lhvdbg.state.target import Target

DEFAULT_STEP_TIMEOUT = 10.0


@dataclass(frozen=True)
class CommandResult:
    """What a registry command gave back: its printed output and its result as data (the
    value it renders as ``--json``; None when it gave none)."""

    output: str
    data: object = None


class CommandHost(Protocol):
    """The command layer as a scenario uses it (``lhvdbg.commands.scenario`` supplies one
    over the registry): run one command, given as a line or as words, on ``session`` with
    the shared stop bookkeeping ``state``; its output also goes to ``out``. A command that
    fails or exits non-zero raises a one-line LhvdbgError."""

    def call(
        self,
        command: str | Sequence[str],
        *,
        session: Session,
        state: dict[str, Any],
        out: TextIO,
    ) -> CommandResult: ...


class StepTimeLimit(TargetTimeout):
    """A step went over its time limit (the message says how long it took)."""


@dataclass
class StopBook:
    """The stop bookkeeping a scenario shares with the commands it runs (the shell keeps
    the same in its Context): the session's target and ``state`` (see ``stops``)."""

    session: Session
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> Target:
        """The session's current target (a new one after a reset)."""
        return self.session.target


@dataclass
class ScenarioRun:
    """One live scenario: a session, the command host, and what the steps gathered."""

    session: Session
    commands: CommandHost | None = None
    deadline: float | None = None  # time.monotonic() value after which steps fail
    log: io.StringIO = field(default_factory=io.StringIO)
    outcomes: list[Outcome] = field(default_factory=list)
    results: dict[str, object] = field(default_factory=dict)
    report: dict[str, Any] | None = None
    diff_result: dict[str, Any] | None = None
    book: StopBook = field(init=False)
    limited: bool = field(default=False, init=False)  # the last wait ends at the deadline

    def __post_init__(self) -> None:
        self.book = StopBook(self.session)

    # --- construction ----------------------------------------------------------------

    @classmethod
    @contextmanager
    def launch(
        cls,
        *,
        arch: str = "amd64",
        variant: str | None = None,
        kernel: Path | str | None = None,
        accel: str = "tcg",
        commands: CommandHost | None = None,
        **options: Any,
    ) -> Iterator[ScenarioRun]:
        """Start a machine for ``variant`` (or ``kernel``) and yield a run on it;
        ``commands`` (``lhvdbg.commands.scenario.registry_commands()``) enables ``run``,
        ``diagnose`` and ``diff``."""
        config = launch_config(arch, variant, kernel, accel, options)
        from lhvdbg.machine.session import Session

        with Session(config) as session:
            yield cls(session, commands=commands)

    # --- time ------------------------------------------------------------------------

    def _timeout(self, requested: float | None) -> float:
        wanted = requested if requested is not None else DEFAULT_STEP_TIMEOUT
        if self.deadline is None:
            return wanted
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TargetTimeout("the scenario's time limit was reached")
        self.limited = left < wanted
        return min(wanted, left)

    def _stopped(self, event: StopEvent) -> StopEvent:
        note_stop(self.book, event)
        return event

    @property
    def last_stop(self) -> StopEvent | None:
        """The event of the last stop (None before the first)."""
        stop: StopEvent | None = self.book.state.get("stop")
        return stop

    # --- run control -----------------------------------------------------------------

    def break_at(self, location: str | int, *, hardware: bool = False) -> int:
        """Set a breakpoint (hardware when asked; else as the accelerator needs)."""
        return self.session.break_at(location, hardware=True if hardware else None)

    def delete(self, number: int | None = None) -> None:
        """Delete breakpoint ``number``, or all."""
        self.session.delete(number)

    def cont(self, timeout: float | None = None) -> StopEvent:
        """Continue until the next stop or the timeout (a ``timeout`` stop, not an error)."""
        return self._stopped(self.session.cont(timeout=self._timeout(timeout)))

    def stepi(self, count: int = 1, timeout: float | None = None) -> StopEvent:
        """Execute ``count`` instructions, one at a time, checking the step's time limit
        (``timeout``, default 10 s, and what is left of the scenario's) between them:
        StepTimeLimit, saying how many ran in how long, when it is over."""
        limit = self._timeout(timeout)
        start = time.monotonic()
        event: StopEvent | None = None
        for done in range(1, count + 1):
            event = self._stopped(self.session.stepi(1))
            if event.reason != "step" or done == count:
                break
            elapsed = time.monotonic() - start
            if elapsed > limit:
                raise StepTimeLimit(
                    f"stepi {count}: {done} instructions took {elapsed:.1f} s, over the "
                    f"{limit:g} s limit"
                )
        assert event is not None
        return event

    def until_df(self, timeout: float | None = None) -> StopEvent:
        """Run until the CPU enters the vector-8 handler (or a triple fault, exit, timeout),
        then diagnose when the CPU can be inspected (and a command host was given)."""
        event = self.session.run_to_vector(DOUBLE_FAULT, timeout=self._timeout(timeout))
        self._stopped(event)
        if event.reason != "timeout" and self.session.alive and self.commands is not None:
            self.diagnose()
        return event

    def wait_serial(self, text: str, timeout: float | None = None) -> bool:
        """Run until the console has printed ``text``, then stop the guest; False if it
        did not in time or the guest stopped first (that stop is kept in ``last_stop``).

        The serial file is checked about every 50 ms while the guest runs, so the guest
        is stopped shortly after the text appears, not at the instruction that printed
        it: use a breakpoint for an exact position.
        """
        limit = self._timeout(timeout)
        if text in self.session.serial_text():
            return True

        def poll() -> None:
            if text in self.session.serial_text():
                raise _SerialSeen

        try:
            event = self.session.cont(timeout=limit, poll=poll)
        except _SerialSeen:
            event = self.session.interrupt()
        self._stopped(event)
        return text in self.session.serial_text()

    def ticks(self, count: int, timeout: float | None = None) -> StopEvent:
        """Let ``count`` timer interrupts be handled: run to the timer vector's handler
        ``count`` times (the vector is re-read as the kernel programs the PIC/LAPIC)."""
        event = self.session.run_to_timer(count=count, timeout=self._timeout(timeout))
        return self._stopped(event)

    def reset(self) -> None:
        """Restart the machine (breakpoints are not kept)."""
        self.session.reset()
        self.report = None
        self.book.state.clear()

    # --- state -----------------------------------------------------------------------

    def capture(self, save: Path | str | None = None) -> Snapshot:
        """A snapshot of the current state (kept for ``facts()``), saved when asked."""
        snapshot = current_snapshot(self.book)
        if save is not None:
            from lhvdbg.state.snapshot import save_snapshot

            save_snapshot(snapshot, Path(save))
        return snapshot

    def diagnose(self) -> dict[str, Any]:
        """Diagnose the current stop with the registry's ``diagnose`` command; its report
        (``outcome``, ``diagnosis[i].id`` ...) joins the facts."""
        self.report = self._data(["diagnose", "--json"])
        return self.report

    def diff(self, reference: str) -> dict[str, Any]:
        """Compare TR, the TSS descriptor and the TSS with a reference (``diff-tss``): the
        facts get ``diff.differences[i]`` and ``diff.fields["tr.selector"].matters``."""
        result = self._data(["diff-tss", "--reference", reference, "--json"])
        fields = {d["field"]: d for d in result.get("differences", []) if isinstance(d, dict)}
        self.diff_result = {**result, "fields": fields}
        return self.diff_result

    def _data(self, words: list[str]) -> dict[str, Any]:
        """Run a registry command and return the object it gave as its result."""
        data = self.call(words).data
        if not isinstance(data, dict):
            kind = "nothing" if data is None else type(data).__name__
            raise UsageError(f"{words[0]} gave {kind} as its result, not an object")
        return data

    def call(self, command: str | Sequence[str]) -> CommandResult:
        """Run a registry command (a line as typed in the shell, or its words) on this
        run's session; its output also goes to the log."""
        if self.commands is None:
            raise UsageError(
                "no command host: give commands=lhvdbg.commands.scenario.registry_commands()"
            )
        return self.commands.call(
            command, session=self.session, state=self.book.state, out=self.log
        )

    def run(self, line: str, *, save_as: str | None = None) -> str:
        """Run a registry command (as in the shell); return its output. With ``save_as``
        its result (the data it renders with ``--json``) is kept under
        ``results.<save_as>``."""
        result = self.call(line)
        if save_as is not None:
            if result.data is None:
                raise UsageError(f"{line!r}: save_as needs a result as data (add --json)")
            self.results[save_as] = result.data
        return result.output

    def facts(self) -> dict[str, object]:
        """The dict assertions resolve against (see :mod:`lhvdbg.scenario.facts`)."""
        facts: dict[str, object] = {}
        alive = self.session.alive
        stop = self.last_stop
        if alive and (stop is None or stop.stopped):
            try:
                facts.update(snapshot_facts(self.capture()))
            except LhvdbgError as exc:
                facts["unavailable"] = {"state": str(exc)}
        else:
            facts["unavailable"] = {"state": "QEMU is not running"}
        facts["alive"] = alive
        facts["accel"] = self.session.accel
        facts["stop"] = stop_facts(stop)
        facts["serial"] = self.session.serial_text()
        facts["results"] = dict(self.results)
        if self.report is not None:
            facts["report"] = self.report
            for key in ("outcome", "diagnosis"):
                if key in self.report:
                    facts[key] = self.report[key]
        if self.diff_result is not None:
            facts["diff"] = self.diff_result
        return facts

    def expect(self, path: str, *, message: str = "", **op: object) -> Outcome:
        """Check one assertion now: ``expect("tr.selector", equals=0x18)``; recorded in
        ``outcomes``. Exactly one operator keyword (see ``model.OPERATORS``)."""
        if len(op) != 1 or next(iter(op)) not in OPERATORS:
            raise UsageError(f"expect: give exactly one of {', '.join(OPERATORS)}")
        ((name, value),) = op.items()
        return self.check(Expectation(path, name, value, Origin("<python>"), message))

    def check(self, expectation: Expectation, facts: dict[str, object] | None = None) -> Outcome:
        """Check ``expectation`` (against ``facts`` or fresh facts); recorded."""
        outcome = check(expectation, facts if facts is not None else self.facts())
        self.outcomes.append(outcome)
        return outcome

    @property
    def passed(self) -> bool:
        """Whether every assertion so far passed."""
        return all(o.passed for o in self.outcomes)

    # --- steps -----------------------------------------------------------------------

    def do(
        self, step: Step, *, allow_host: bool = False, writable: Writable | None = None
    ) -> str | None:
        """Perform one step of a scenario file; a failure message, or None. Unless
        ``allow_host``, a step that would touch the host is refused (ScenarioError) and a
        capture must land inside ``writable`` (see :mod:`lhvdbg.scenario.policy`)."""
        try:
            return self._do(step, allow_host, writable)
        except StepTimeLimit as exc:
            return str(exc)

    def _do(self, step: Step, allow_host: bool, writable: Writable | None) -> str | None:
        action, arg, timeout = step.action, step.arg, step.timeout
        if action == "run":
            refused = run_line_runs_guest(str(arg))
            if refused is None and not allow_host:
                refused = run_line_host_use(str(arg))
                refused = refused and f"{refused} (refused; {ALLOW_HOST} allows it)"
            if refused is not None:
                raise ScenarioError(f"{step.origin}: {refused}", file=step.origin.file)
        if action in ("break", "hbreak"):
            self.break_at(arg if isinstance(arg, int) else str(arg), hardware=action == "hbreak")
        elif action == "delete":
            self.delete(None if arg is True else int(arg))  # type: ignore[call-overload]
        elif action == "continue":
            self.cont(timeout)
        elif action == "stepi":
            self.stepi(int(arg), timeout)  # type: ignore[call-overload]
        elif action == "until_df":
            event = self.until_df(timeout)
            if event.reason == "timeout":
                return f"no vector 8 {self._waited(timeout)}"
        elif action == "wait_serial":
            if not self.wait_serial(str(arg), timeout):
                return self._serial_failure(str(arg), timeout)
        elif action == "ticks":
            event = self.ticks(int(arg), timeout)  # type: ignore[call-overload]
            if event.reason != "vector":
                return f"{arg} timer ticks not seen: stopped by {event.reason} {event.detail}"
        elif action == "capture":
            self.capture(
                None if arg is True else _capture_path(str(arg), step, writable, allow_host)
            )
        elif action == "diagnose":
            self.diagnose()
        elif action == "diff":
            self.diff(str(arg))
        elif action == "run":
            self.run(str(arg), save_as=step.save_as)
        elif action == "reset":
            self.reset()
        elif action != "expect":
            raise ScenarioError(f"{step.origin}: unknown action {action}")
        return None

    def _waited(self, timeout: float | None) -> str:
        """How long a step that timed out waited: its own timeout, or the scenario's time
        limit when that came first."""
        if self.limited:
            return "before the scenario's time limit"
        return f"within {timeout if timeout is not None else DEFAULT_STEP_TIMEOUT:g} s"

    def _serial_failure(self, text: str, timeout: float | None) -> str:
        stop = self.last_stop
        serial = self.session.serial_text().rstrip().splitlines()
        tail = repr(serial[-1]) if serial else "nothing"
        if stop is not None and stop.reason != "timeout":
            detail = f": {stop.detail}" if stop.detail else ""
            why = f": the guest stopped first ({stop.reason}{detail})"
        else:
            why = f" {self._waited(timeout)}"
        return f"serial text {text!r} not seen{why}; last line {tail}"


def _capture_path(name: str, step: Step, writable: Writable | None, allow_host: bool) -> Path:
    """Where a ``capture = name`` step writes (refused outside ``writable`` unless
    ``allow_host``; as given when there is no ``writable``: the Python API)."""
    if writable is None:
        return Path(name)
    return writable.path_for(name) if allow_host else writable.check(name, step.origin)


class _SerialSeen(Exception):
    """Raised from ``cont``'s poll callback to end a ``wait_serial`` (caught there)."""


def launch_config(
    arch: str,
    variant: str | None,
    kernel: Path | str | None,
    accel: str,
    options: dict[str, Any] | None = None,
) -> LaunchConfig:
    """The LaunchConfig of a scenario (``options``: memory_mb, append, extra_args...)."""
    from lhvdbg.machine.session import LaunchConfig

    extra = dict(options or {})
    if "extra_args" in extra:
        extra["extra_args"] = tuple(str(a) for a in extra["extra_args"])
    try:
        if kernel is not None:
            return LaunchConfig(kernel=Path(kernel), arch=arch, accel=accel, **extra)  # type: ignore[arg-type]
        return LaunchConfig(variant=variant, arch=arch, accel=accel, **extra)  # type: ignore[arg-type]
    except TypeError as exc:
        raise UsageError(f"bad launch option: {exc}") from exc


# --- the runner ------------------------------------------------------------------------


@dataclass
class ScenarioResult:
    """What happened to one scenario."""

    name: str
    label: str
    file: str
    status: str  # "pass", "fail", "error"
    elapsed: float
    accel: str | None = None
    failures: list[str] = field(default_factory=list)  # one line each
    where: str = ""  # file:line of the first failure or error
    step: int | None = None  # 1-based step of the failure (None: final assertions)
    log: str = ""  # command output and the serial tail, for --junit and -v
    serial: str = ""
    allow_host: bool = False  # run with --allow-host
    host_access: list[str] = field(default_factory=list)  # what it did to the host, then

    @property
    def passed(self) -> bool:
        """Whether every step and assertion passed."""
        return self.status == "pass"

    def to_dict(self) -> dict[str, object]:
        """JSON form (also what worker processes hand back)."""
        return asdict(self) | {"elapsed": round(self.elapsed, 3)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScenarioResult:
        """The inverse of :meth:`to_dict`."""
        return cls(**data)


def run_scenario(
    scenario: Scenario,
    *,
    commands: CommandHost | None = None,
    session_factory: Callable[[LaunchConfig], Session] | None = None,
    allow_host: bool = False,
    output: Path | None = None,
) -> ScenarioResult:
    """Launch the scenario's machine, run its steps, check its assertions; never raises
    for a scenario's own problems (they become ``fail``/``error`` results).

    Unless ``allow_host``, a scenario that would touch the host (a host command, a socket,
    a write outside its folder and ``output``) is an error before anything starts; with
    it, the result lists what it was allowed (``host_access``)."""
    start = time.monotonic()
    result = ScenarioResult(
        name=scenario.name,
        label=scenario.label,
        file=str(scenario.path) if scenario.path else "<python>",
        status="pass",
        elapsed=0.0,
        allow_host=allow_host,
    )
    writable = writable_for(scenario, output)
    uses = host_uses(scenario, writable)
    if uses and not allow_host:
        _refuse(result, uses)
        return result
    result.host_access = [str(use) for use in uses]
    if session_factory is None:
        from lhvdbg.machine.session import Session

        session_factory = Session
    run: ScenarioRun | None = None
    try:
        config = launch_config(
            scenario.arch, scenario.variant, scenario.kernel, scenario.accel, dict(scenario.options)
        )
        with session_factory(config) as session:
            result.accel = session.accel
            run = ScenarioRun(session, commands=commands, deadline=start + scenario.timeout)
            _run_steps(run, scenario, result, allow_host, writable, start)
            result.serial = session.serial_text()
    except LhvdbgError as exc:
        result.status = "error"
        result.failures.append(str(exc))
    result.elapsed = time.monotonic() - start
    if run is not None:
        result.log = run.log.getvalue()
    return result


def _refuse(result: ScenarioResult, uses: list[HostUse]) -> None:
    result.status = "error"
    result.where = str(uses[0].origin)
    result.failures = [
        f"{use}: refused ({ALLOW_HOST} allows it for a trusted file)" for use in uses
    ]


def _run_steps(
    run: ScenarioRun,
    scenario: Scenario,
    result: ScenarioResult,
    allow_host: bool,
    writable: Writable,
    start: float,
) -> None:
    for number, step in enumerate(scenario.steps, start=1):
        where = str(step.origin)
        elapsed = time.monotonic() - start
        if elapsed >= scenario.timeout:
            result.status, result.step, result.where = "fail", number, where
            result.failures.append(
                f"step {number} ({step.describe()}) not run: the scenario's "
                f"{scenario.timeout:g} s time limit was reached after {elapsed:.1f} s"
            )
            return
        try:
            failure, status = run.do(step, allow_host=allow_host, writable=writable), "fail"
        except LhvdbgError as exc:
            failure, status = str(exc), "error"
        if failure is not None:
            result.status, result.step, result.where = status, number, where
            result.failures.append(f"step {number} ({step.describe()}): {failure}")
            return
        if step.expects and not _check_all(run, step.expects, result, f"step {number}: "):
            result.step = number
            return
    if scenario.expects:
        _check_all(run, scenario.expects, result, "")


def _check_all(
    run: ScenarioRun, expects: tuple[Expectation, ...], result: ScenarioResult, prefix: str
) -> bool:
    facts = run.facts()
    ok = True
    for expectation in expects:
        outcome = run.check(expectation, facts)
        if not outcome.passed:
            if ok and not result.where:
                result.where = str(expectation.origin)
            ok = False
            result.status = "fail"
            result.failures.append(f"{prefix}{outcome.explain()} ({expectation.origin})")
    return ok
