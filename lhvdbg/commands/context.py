"""``context`` (the stop's registers, code and stack in the CPU's mode) and ``set context``.

The shell shows the context after every stop (``stepi``, ``next``, ``continue``, a
breakpoint, ``until-df``); ``set context off`` turns that off, ``set context regs,code``
picks sections. The choice lives in ``ctx.state["context"]`` (the shell sets it; scenarios
leave it unset, so they print no context).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from lhvdbg.commands.registry import Context, command
from lhvdbg.errors import LhvdbgError, UsageError

if TYPE_CHECKING:
    from lhvdbg.machine.session import StopEvent

WHERE = ("shell", "scenario")
STATE_KEY = "context"


def _event_text(event: StopEvent | None) -> str:
    if event is None:
        return ""
    if event.detail:
        return (
            event.detail
            if event.detail.startswith(event.reason)
            else (f"{event.reason}: {event.detail}")
        )
    return event.reason


def render(
    ctx: Context, sections: tuple[str, ...] | None = None, *, with_event: bool = True
) -> str:
    """The context view of the target now (the stop before from ``ctx.state``)."""
    from lhvdbg.ui.context import SECTIONS, ContextInput, render_context

    target = ctx.require_target()
    cpu = target.cpu()
    data = ContextInput(
        cpu=cpu,
        previous=ctx.state.get("previous") if ctx.state.get("current") == cpu else None,
        read=target.read_memory,
        symbols=target.symbols(),
        event=_event_text(ctx.state.get("stop")) if with_event else "",
    )
    return render_context(data, sections if sections is not None else SECTIONS)


def show_after_stop(ctx: Context, event: StopEvent) -> None:
    """The context after a stop, when the shell asked for it and the CPU can be read."""
    sections = ctx.state.get(STATE_KEY)
    if not sections or not event.stopped:
        return
    session = ctx.session
    if session is not None and not session.alive:
        return
    try:
        ctx.stdout.write(render(ctx, tuple(sections), with_event=False))
    except LhvdbgError as exc:
        ctx.stdout.write(f"(no context: {exc})\n")


def _configure_context(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "sections",
        nargs="?",
        help="comma list of regs, code, stack (default: the ones set, or all)",
    )


@command(
    "context",
    "show the stop: registers (changed ones marked *), code in the CPU's mode, stack",
    configure=_configure_context,
    category="views",
    where=WHERE,
    json=None,
)
def context_command(args: argparse.Namespace, ctx: Context) -> int:
    from lhvdbg.ui.context import SECTIONS, parse_sections

    _require_cpu(ctx)
    if args.sections:
        sections = parse_sections(args.sections) or SECTIONS
    else:
        sections = tuple(ctx.state.get(STATE_KEY) or SECTIONS)
    ctx.stdout.write(render(ctx, sections))
    return 0


def _require_cpu(ctx: Context) -> None:
    """One line when the guest runs (an exited guest fails on the read, which the shell
    turns into its one line)."""
    session = ctx.session
    if session is None:
        return
    state = getattr(getattr(session, "runstate", None), "name", "")
    if state == "RUNNING":
        raise UsageError("the guest is running: Ctrl-C stops it")


def _configure_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("setting", choices=("context",), help="what to set")
    parser.add_argument("value", help="context: off, on, or a comma list of regs, code, stack")


@command(
    "set",
    "shell settings: set context off|on|regs,code,stack",
    configure=_configure_set,
    category="views",
    where=("shell",),
    json=None,
)
def set_command(args: argparse.Namespace, ctx: Context) -> int:
    from lhvdbg.ui.context import parse_sections

    sections: Any = parse_sections(args.value)
    ctx.state[STATE_KEY] = sections
    shown = ",".join(sections) if sections else "off"
    ctx.stdout.write(f"context after each stop: {shown}\n")
    return 0
