"""Reading the files a user names, bounded: the one place lhvdbg opens an input file.

Every input file (kernel, symbol file, snapshot, scenario, raw bytes for ``decode``) must
be a regular file no larger than the limit of its kind (:data:`KERNEL`, :data:`SYMBOLS`,
:data:`SNAPSHOT`, :data:`SCENARIO`, :data:`RAW_BYTES`, :data:`CDROM`). Both are checked on
the open file before a byte is read, and the read itself stops one byte past the limit, so
``/dev/zero``, ``/dev/urandom``, a FIFO with no writer, a directory, or a file that grows
while it is read is a one-line error naming the file and the limit, never an endless read.
The error type is the kind's (KernelError for kernels, SnapshotError for snapshots ...).

Like :mod:`lhvdbg.errors`, every layer may import this module (it imports nothing else).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from lhvdbg.errors import (
    DecodeError,
    KernelError,
    LhvdbgError,
    ScenarioError,
    SnapshotError,
    UsageError,
)

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


@dataclass(frozen=True)
class FileKind:
    """What a file is for, the most it may hold, and the error that says otherwise."""

    name: str
    limit: int
    error: type[LhvdbgError]

    @property
    def limit_text(self) -> str:
        """The limit in the largest whole unit: ``64 MiB``."""
        return size_text(self.limit)


KERNEL = FileKind("kernel", 256 * MiB, KernelError)
SYMBOLS = FileKind("symbol file", 256 * MiB, KernelError)
SNAPSHOT = FileKind("snapshot", 64 * MiB, SnapshotError)
SCENARIO = FileKind("scenario file", 1 * MiB, ScenarioError)
RAW_BYTES = FileKind("raw-bytes file", 64 * KiB, DecodeError)
CDROM = FileKind("CD-ROM image", 8 * GiB, UsageError)  # checked only: QEMU reads it
INT_LOG = FileKind("QEMU -d int log", 256 * MiB, UsageError)


def size_text(size: int) -> str:
    """``size`` in bytes as the largest unit that divides it (or bytes)."""
    for unit, name in ((GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit} {name}"
    return f"{size} bytes"


def _fail(kind: FileKind, path: Path, problem: str) -> LhvdbgError:
    return kind.error(f"{path}: {problem}", path=str(path), kind=kind.name)


def _check(kind: FileKind, path: Path, info: os.stat_result) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise _fail(kind, path, f"is a directory, not a {kind.name}")
    if not stat.S_ISREG(info.st_mode):
        raise _fail(
            kind,
            path,
            f"not a regular file (a {kind.name} is a regular file of at most {kind.limit_text})",
        )
    if info.st_size > kind.limit:
        raise _fail(
            kind,
            path,
            f"{size_text(info.st_size)} is over the {kind.limit_text} limit for a {kind.name}",
        )


def _os_error(kind: FileKind, path: Path, exc: OSError) -> LhvdbgError:
    if isinstance(exc, FileNotFoundError):
        return kind.error(f"{kind.name} not found: {path}", path=str(path), kind=kind.name)
    return _fail(kind, path, f"cannot read: {exc.strerror or exc}")


def check_file(path: Path | str, kind: FileKind) -> int:
    """The size of ``path`` after checking it is a regular file within ``kind``'s limit
    (for files another program reads, such as the kernel QEMU loads)."""
    path = Path(path)
    try:
        info = os.stat(path)
    except OSError as exc:
        raise _os_error(kind, path, exc) from exc
    _check(kind, path, info)
    return info.st_size


def read_bytes(path: Path | str, kind: FileKind, *, head: int | None = None) -> bytes:
    """The bytes of ``path`` (only the first ``head`` bytes when given), checked as
    :func:`check_file` does on the opened file, and never more than ``kind.limit``."""
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO with no writer returns at once (then fails the check).
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if isinstance(exc, IsADirectoryError):
            raise _fail(kind, path, f"is a directory, not a {kind.name}") from exc
        raise _os_error(kind, path, exc) from exc
    try:
        _check(kind, path, os.fstat(fd))
        wanted = kind.limit + 1 if head is None else min(head, kind.limit + 1)
        chunks: list[bytes] = []
        got = 0
        while got < wanted:
            chunk = os.read(fd, min(wanted - got, 1 * MiB))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    except OSError as exc:
        raise _os_error(kind, path, exc) from exc
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > kind.limit:
        raise _fail(kind, path, f"grew past the {kind.limit_text} limit for a {kind.name}")
    return data


def read_text(path: Path | str, kind: FileKind) -> str:
    """The UTF-8 text of ``path``, bounded as :func:`read_bytes`."""
    data = read_bytes(path, kind)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(kind, Path(path), f"not UTF-8 text (byte {exc.start})") from exc
