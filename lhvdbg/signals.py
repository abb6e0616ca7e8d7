"""How lhvdbg ends on SIGINT and SIGTERM: one line (or none), exit 130 or 143.

The CLI calls :func:`install` first of all. SIGTERM then raises :class:`Terminated` in the
main thread and SIGINT raises KeyboardInterrupt (Python's own handler), so the
``with Session(...)`` blocks unwind and close QEMU and gdb exactly as on an error; the CLI
turns either into one line and the shell's conventional exit status (128 + signal number).
SIGINT keeps Python's handler (the shell absorbs a Ctrl-C and goes on, so a later one must
still arrive); after a SIGTERM further ones are ignored, so the clean-up it started is not
cut short (QEMU and gdb also die with lhvdbg: they run with PDEATHSIG).

Imports only the standard library's ``signal``: it is installed before anything slow.
"""

from __future__ import annotations

import signal

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from types import FrameType

EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143


class Terminated(BaseException):
    """SIGTERM arrived: unwind as for Ctrl-C, but end the program (not only a command).

    A BaseException, so ``except Exception`` blocks do not swallow it."""


def _on_terminate(number: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the first one decided how we end
    raise Terminated


Handler = object  # what signal.signal returns: a callable, SIG_DFL/SIG_IGN, or None
_saved: list[Handler] = []  # the SIGTERM handler from before install(), while installed


def install() -> None:
    """From now on SIGTERM raises :class:`Terminated` (once). Idempotent: the handler from
    before the first call is kept for :func:`restore`. Outside the main thread nothing
    changes (Python only lets that thread set handlers)."""
    try:
        before = signal.signal(signal.SIGTERM, _on_terminate)
    except ValueError:
        return
    if not _saved:
        _saved.append(before)


def restore() -> None:
    """Put back the SIGTERM handler from before :func:`install` (the CLI may run inside a
    test process)."""
    if _saved:
        signal.signal(signal.SIGTERM, _saved.pop())  # type: ignore[arg-type]


EXIT_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})
HeldMask = frozenset[int | signal.Signals]  # a thread signal mask, as pthread_sigmask gives it


def hold_exit_signals() -> HeldMask:
    """Hold SIGINT and SIGTERM back (the thread's signal mask) while something must not
    be cut in half, such as a folder made but not yet known to its clean-up; the mask
    from before, for :func:`release_signals`."""
    return frozenset(signal.pthread_sigmask(signal.SIG_BLOCK, EXIT_SIGNALS))


def release_signals(before: HeldMask) -> None:
    """Put the signal mask from :func:`hold_exit_signals` back: a signal held meanwhile
    arrives now (its Python handler runs at the caller's next step)."""
    signal.pthread_sigmask(signal.SIG_SETMASK, before)
