"""A session's run state: one explicit value, its transitions in one table, and a guard.

In the manner of qemu.qmp's ``protocol.Runstate``/``require`` (and avatar2's
``TargetStates``): every state change goes through :meth:`RunstateMachine.set_runstate`,
which refuses a transition the table does not list and logs each one at debug level; an
operation declares the states it needs with ``@require(...)`` and gets a
:class:`~lhvdbg.errors.StateError` (``state``, ``required``) otherwise.

::

    CLOSED ──start──▶ STARTING ──up──▶ STOPPED ◀──stop──▶ RUNNING
                          │              │  ▲                │
                          │              ▼  │ (reset: close, start again)
                          │          SHUTDOWN (QEMU paused after a triple fault)
                          ▼              ▼
                       CLOSED ◀──── EXITED (QEMU's process ended)

Any state may go to CLOSED (``close()``); CLOSED goes only to STARTING.
"""

from __future__ import annotations

import enum
import functools
import logging
from collections.abc import Callable
from typing import Any, Self, TypeVar

from lhvdbg.errors import GdbError, QmpError, StateError, TargetTimeout

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


class Runstate(enum.Enum):
    """Where a session's machine is."""

    STARTING = "starting"  # QEMU and gdb being started and connected
    STOPPED = "stopped"  # the CPU is stopped and can be inspected or resumed
    RUNNING = "running"  # the guest runs (gdb awaits a *stopped)
    SHUTDOWN = "shut down"  # the guest shut down (triple fault): QEMU paused, inspectable
    EXITED = "exited"  # QEMU's process has ended
    CLOSED = "closed"  # not started, or closed: no processes, no folder


S = Runstate
TRANSITIONS: dict[Runstate, frozenset[Runstate]] = {
    S.CLOSED: frozenset({S.STARTING}),
    S.STARTING: frozenset({S.STOPPED, S.CLOSED}),
    S.STOPPED: frozenset({S.RUNNING, S.SHUTDOWN, S.EXITED, S.CLOSED}),
    S.RUNNING: frozenset({S.STOPPED, S.SHUTDOWN, S.EXITED, S.CLOSED}),
    S.SHUTDOWN: frozenset({S.EXITED, S.CLOSED}),
    S.EXITED: frozenset({S.CLOSED}),
}
#: States in which QEMU's process is there (a refresh may find it gone: EXITED).
LIVE = frozenset({S.STOPPED, S.RUNNING, S.SHUTDOWN})
#: States in which the CPU can be read.
INSPECTABLE = (S.STOPPED, S.SHUTDOWN)
#: States run control accepts (it answers "exited" when QEMU is gone).
RUNNABLE = (S.STOPPED, S.SHUTDOWN, S.EXITED)


def state_after_stop(reason: str, current: Runstate) -> Runstate:
    """The state a stop of ``reason`` (a StopEvent reason) leaves: EXITED, SHUTDOWN, or
    STOPPED (a shut-down machine stays SHUTDOWN whatever is reported of it)."""
    if reason == "exited":
        return S.EXITED
    if reason == "shutdown" or current is S.SHUTDOWN:
        return S.SHUTDOWN
    return S.STOPPED


class RunstateMachine:
    """The run state and its transitions; a session derives from it. A context manager:
    leaving the ``with`` block calls :meth:`close`."""

    _runstate: Runstate = Runstate.CLOSED
    _epoch = 0  # counts the changes of state: the machine read before one may differ now

    def close(self) -> None:
        """Release everything and move to CLOSED."""
        self.set_runstate(Runstate.CLOSED)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def runstate(self) -> Runstate:
        """The current run state."""
        return self._runstate

    def set_runstate(self, new: Runstate) -> None:
        """Move to ``new`` (the same state is no change); RuntimeError for a transition
        the table does not allow — a bug, never a user's mistake."""
        old = self._runstate
        if new is old:
            return
        if new not in TRANSITIONS[old]:
            raise RuntimeError(f"runstate {old.name} -> {new.name} is not a transition")
        if log.isEnabledFor(logging.DEBUG):  # twice per step: no enum names otherwise
            log.debug("runstate %s -> %s", old.name, new.name)
        self._runstate = new
        self._epoch += 1

    @property
    def epoch(self) -> int:
        """How many times the state changed: equal epochs (in a stopped state) mean the
        guest did not run in between."""
        return self._epoch

    def refresh_runstate(self) -> None:
        """Bring the state up to date with the processes before a guarded call (a
        session notices QEMU having exited here). The base has nothing to check."""

    def state_reason(self) -> str:
        """Why the session is in its state, for StateError messages ("" if nothing)."""
        return ""

    def backend_failed(self, exc: Exception, what: str) -> Exception | None:
        """A better error for a gdb/QMP failure or timeout during ``what`` (a session:
        QEMU died under it), raised from ``exc``; None keeps ``exc``."""
        return None


def require(*states: Runstate) -> Callable[[F], F]:
    """Decorator: the method runs only in one of ``states`` (after
    :meth:`RunstateMachine.refresh_runstate`); StateError naming the state otherwise.
    A gdb/QMP failure or timeout inside it goes through
    :meth:`RunstateMachine.backend_failed`, so every guarded call explains a backend that
    died under it the same way."""

    def decorator(method: F) -> F:
        what = method.__name__.strip("_").replace("_", " ")

        @functools.wraps(method)
        def guarded(self: RunstateMachine, *args: Any, **kwargs: Any) -> Any:
            self.refresh_runstate()
            if self._runstate not in states:
                raise StateError(self._runstate, states, what=what, why=self.state_reason())
            try:
                return method(self, *args, **kwargs)
            except (GdbError, QmpError, TargetTimeout) as exc:
                better = self.backend_failed(exc, what)
                if better is None:
                    raise
                raise better from exc

        guarded.required_states = states  # type: ignore[attr-defined]
        return guarded  # type: ignore[return-value]

    return decorator
