"""Stops shared by the shell and scenarios: where the last one is kept, and as facts.

``ctx.state`` keys: ``stop`` (the last :class:`StopEvent`), ``current`` (the CPU state at
it), ``previous`` (the CPU state at the stop before; the views highlight what changed),
``snapshot`` (a capture taken at the current stop, dropped at the next).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from lhvdbg.errors import LhvdbgError, UsageError

if TYPE_CHECKING:
    from lhvdbg.machine.session import StopEvent
    from lhvdbg.state.snapshot import Snapshot
    from lhvdbg.state.target import Target


class StopHolder(Protocol):
    """Where the stop bookkeeping lives: the commands' Context (shell) or a scenario's
    StopBook. Only ``target`` and ``state`` are used."""

    @property
    def target(self) -> Target | None: ...

    @property
    def state(self) -> dict[str, Any]: ...


def stop_facts(event: StopEvent | None) -> dict[str, object] | None:
    """The last stop as facts: ``stop.reason``, ``stop.address``, ``stop.vector`` ..."""
    if event is None:
        return None
    return {
        "reason": event.reason,
        "address": event.address,
        "breakpoint": event.breakpoint,
        "vector": event.vector,
        "signal": event.signal,
        "exit_code": event.exit_code,
        "guest_exit_value": event.guest_exit_value,
        "detail": event.detail,
    }


def note_stop(ctx: StopHolder, event: StopEvent | None) -> None:
    """Record a new stop in ``ctx.state`` (shared by the shell and scenarios).

    ``state["stop"]`` is the event; ``state["previous"]`` becomes the CPU state of the
    stop before (the views highlight what changed since), ``state["current"]`` this one.
    A snapshot taken at the old stop is dropped.
    """
    state = ctx.state
    state["stop"] = event
    state.pop("snapshot", None)
    target = ctx.target
    current = None
    if target is not None and (event is None or event.stopped):
        try:
            current = target.cpu()
        except LhvdbgError:
            current = None
    if state.get("current") is not None:
        state["previous"] = state["current"]
    state["current"] = current


def current_snapshot(ctx: StopHolder) -> Snapshot:
    """A capture of the current stop: taken once per stop, kept in ``ctx.state``."""
    snapshot: Snapshot | None = ctx.state.get("snapshot")
    if snapshot is None:
        target = ctx.target
        if target is None:
            raise UsageError("no target: give launch options or --snapshot FILE")
        snapshot = target.capture()
        ctx.state["snapshot"] = snapshot
    return snapshot
