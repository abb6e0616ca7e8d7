"""A session's private 0700 folder, and the sweep of folders their owners left behind.

Each folder (``$TMPDIR/lhvdbg-XXXXXXXX``) holds the QMP and gdbstub sockets, the serial
and ``-d int`` logs, and an ``owner`` file: the pid of the lhvdbg process that made it and
that process's start time (field 22 of ``/proc/<pid>/stat``, so a reused pid is not
mistaken for the owner). A lhvdbg killed with SIGKILL cannot remove its folder; the next
session sweeps every ``lhvdbg-*`` folder of this user whose owner is gone. Folders
without an ``owner`` file (older versions) and folders of other users are left alone.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lhvdbg.signals import HeldMask

log = logging.getLogger(__name__)

PREFIX = "lhvdbg-"
OWNER_FILE = "owner"


def process_start_time(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read()
    except OSError:
        return None
    fields = text.rsplit(b") ", 1)[-1].split()
    # fields[0] is field 3 (state); the start time is field 22
    if len(fields) < 20 or fields[0] == b"Z":
        return None
    return int(fields[19])


def owner_record(pid: int) -> str:
    """The ``owner`` file's text for process ``pid``: ``"<pid> <start time>"``."""
    return f"{pid} {process_start_time(pid) or 0}\n"


def owner_alive(text: str) -> bool:
    """Whether the process an ``owner`` file names is still the one running."""
    try:
        pid_text, start_text = text.split()
        pid, start = int(pid_text), int(start_text)
    except ValueError:
        return True  # unreadable: not provably stale
    now = process_start_time(pid)
    return now is not None and (start == 0 or now == start)


def sweep_stale(parent: Path | None = None) -> list[Path]:
    """Remove this user's ``lhvdbg-*`` folders in ``parent`` (default: the temp dir)
    whose owner process is gone; return the folders removed."""
    where = Path(parent or tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(os.scandir(where))
    except OSError:
        return removed
    uid = os.getuid()
    for entry in entries:
        if not entry.name.startswith(PREFIX):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid:
                continue
            text = (Path(entry.path) / OWNER_FILE).read_text()
        except OSError:
            continue
        if owner_alive(text):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        log.debug("removed stale session folder %s (owner %s)", entry.path, text.strip())
        removed.append(Path(entry.path))
    return removed


@dataclass
class SessionPaths:
    """Files of one session in its private temporary directory."""

    directory: Path
    qmp_socket: Path
    gdb_socket: Path
    hmp_socket: Path
    serial_log: Path
    int_log: Path
    qemu_stderr: Path
    gdb_stderr: Path

    @classmethod
    def create(cls) -> SessionPaths:
        """Sweep stale folders, then make a fresh 0700 one (``mkdtemp`` creates it so)
        with its ``owner`` file, and the paths in it."""
        sweep_stale()
        d = Path(tempfile.mkdtemp(prefix=PREFIX))
        os.chmod(d, 0o700)
        (d / OWNER_FILE).write_text(owner_record(os.getpid()))
        return cls.inside(d)

    @classmethod
    def create_holding_signals(cls) -> tuple[SessionPaths, HeldMask]:
        """:meth:`create` with SIGINT and SIGTERM held back until the caller releases
        them (``lhvdbg.signals.release_signals``) where its clean-up covers the folder: a
        SIGTERM right after ``mkdtemp`` left a folder holding only its ``owner`` file
        (one run in 60 with the signal 0.10-0.25 s into ``lhvdbg run``)."""
        from lhvdbg.signals import hold_exit_signals, release_signals

        held = hold_exit_signals()
        try:
            return cls.create(), held
        except BaseException:
            release_signals(held)
            raise

    @classmethod
    def inside(cls, d: Path) -> SessionPaths:
        """The session's file names inside directory ``d``."""
        return cls(
            directory=d,
            qmp_socket=d / "qmp.sock",
            gdb_socket=d / "gdb.sock",
            hmp_socket=d / "hmp.sock",
            serial_log=d / "serial.log",
            int_log=d / "int.log",
            qemu_stderr=d / "qemu.stderr",
            gdb_stderr=d / "gdb.stderr",
        )
