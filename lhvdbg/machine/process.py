"""Child processes that never outlive lhvdbg.

Every QEMU and gdb is started by :func:`popen_owned`: in its own process group (so a
terminal's Ctrl-C reaches lhvdbg only, and the whole group can be killed at once) and
with ``PR_SET_PDEATHSIG = SIGKILL`` (Linux ``prctl(2)``), so the kernel kills it if the
Python process dies without cleaning up, even by SIGKILL. Note: the death signal fires
when the *thread* that forked exits; sessions are meant to be created by a long-lived
thread (normally the main thread).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any

from lhvdbg.errors import ToolMissingError

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1

_libc: Any = None


def _prctl() -> Callable[..., int] | None:
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        except OSError:
            _libc = False
    return _libc.prctl if _libc else None


def _child_setup() -> None:  # runs in the child between fork and exec
    prctl = _prctl()
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    # the parent may already be gone (race between fork and prctl): then die now
    if os.getppid() == 1:
        os._exit(1)
    # children must not inherit an ignored SIGINT/SIGTERM disposition surprises
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def which(program: str, what: str) -> str:
    """The absolute path of ``program`` or ToolMissingError naming the package."""
    path = shutil.which(program)
    if path is None:
        raise ToolMissingError(f"{program} not found: install {what}", program=program)
    return path


def popen_owned(argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen`` in a new process group, killed when this process dies.

    The death signal is set by util-linux's ``setpriv --pdeathsig KILL`` (essential in
    Debian), which then executes ``argv``: Popen can then use ``vfork``, 0.3 ms a start
    against 4.7 ms for ``fork`` of this process to run a ``preexec_fn`` (two starts on
    the way to every session). Without setpriv, or when this process ignores SIGINT or
    SIGTERM (a child would inherit that), the ``preexec_fn`` path sets it up itself."""
    log.debug("starting: %s", " ".join(argv))
    setpriv = shutil.which("setpriv")
    if setpriv is not None and not _ignores_stop_signals():
        program = shutil.which(argv[0])
        if program is None:
            raise ToolMissingError(f"{argv[0]} not found", program=argv[0])
        owned = [setpriv, "--pdeathsig", "KILL", "--", program, *argv[1:]]
        return subprocess.Popen(owned, process_group=0, close_fds=True, **kwargs)
    _prctl()  # load libc before fork
    try:
        return subprocess.Popen(
            list(argv),
            process_group=0,
            preexec_fn=_child_setup,
            close_fds=True,
            **kwargs,
        )
    except FileNotFoundError as exc:
        raise ToolMissingError(f"{argv[0]} not found", program=argv[0]) from exc


def _ignores_stop_signals() -> bool:
    return signal.SIG_IGN in (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))


def is_running(process: subprocess.Popen[bytes]) -> bool:
    """Whether the process has not exited, WITHOUT reaping it: while the leader is
    unreaped its pid (and so its process group id) cannot be reused, which keeps
    :func:`kill_process_group` safe."""
    if process.returncode is not None:
        return False
    try:
        info = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return process.poll() is None
    return info is None


def exit_status(process: subprocess.Popen[bytes]) -> int | None:
    """The exit code (negative signal number) once exited, without reaping; else None."""
    if process.returncode is not None:
        return process.returncode
    try:
        info = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return process.poll()
    if info is None:
        return None
    if info.si_code == os.CLD_EXITED:
        return info.si_status
    return -info.si_status


def kill_process_group(
    process: subprocess.Popen[bytes], *, grace: float = 1.0, reap: bool = True
) -> None:
    """SIGTERM the process's group, wait up to ``grace`` seconds, SIGKILL the group, reap
    (``grace`` 0: SIGKILL at once). ``reap=False`` leaves the killed process to die
    without waiting for the kernel's teardown (~8 ms for QEMU): for a process that ends
    next (its init reaps it) or that reaps later (:mod:`subprocess` does, on its next
    start).

    Signals go to the group only while the leader is unreaped (so its id is not reused).
    """
    if process.returncode is not None:
        return
    if grace > 0 and is_running(process):
        _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while is_running(process) and time.monotonic() < deadline:
            time.sleep(0.005)
    _signal_group(process, signal.SIGKILL)
    if not reap:
        return
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover - only a stuck kernel
        log.warning("process %d did not die", process.pid)


def kill_groups_now(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGKILL the group of every process not reaped yet, all at once, without waiting:
    the kernel's teardown of each (~8 ms for QEMU, as much for gdb) then overlaps;
    :func:`kill_process_group` reaps them after."""
    for process in processes:
        if process.returncode is None:
            _signal_group(process, signal.SIGKILL)


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def sigterm_as_exit() -> Any:
    """Make SIGTERM raise SystemExit(143) (so ``with`` blocks clean up) when this is the
    main thread and nobody else handles SIGTERM; the handler replaced, or None."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None

    def on_sigterm(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, on_sigterm)


def restore_sigterm(old: Any) -> None:
    """Put back the SIGTERM handler :func:`sigterm_as_exit` replaced (None: nothing)."""
    if old is not None:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, old)
