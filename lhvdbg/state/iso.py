"""The multiboot kernel inside a bootable ISO image, for its symbols.

``--cdrom ISO`` boots through GRUB; gdb and the vector-8 stop still want the kernel's
ELF (its ``lidt`` sites, its symbols). This reads the ISO with pycdlib (pure Python, no
mount) and takes the file GRUB's configuration loads with ``multiboot``/``multiboot2``
(``/boot/grub/grub.cfg``, ``/boot/grub/grub.conf``, ``/boot/grub/menu.lst``), else the
first x86 ELF on the disc whose first 8 KiB hold a valid multiboot header (Multiboot
0.6.96 §3.1.1). GRUB's own modules are ELF files too, but carry no multiboot header.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from lhvdbg.errors import KernelError
from lhvdbg.state.elf import ELF_MAGIC, MULTIBOOT_SEARCH, find_multiboot_header

__all__ = ["IsoKernel", "extract_iso_kernel", "find_iso_kernel", "prune_cache"]

GRUB_CONFIGS = ("/boot/grub/grub.cfg", "/boot/grub/grub.conf", "/boot/grub/menu.lst")
_MULTIBOOT_LINE = re.compile(r"^\s*(?:multiboot2?|kernel)\s+(?:--\S+\s+)*(\S+)", re.MULTILINE)
MAX_KERNEL = 256 * 1024 * 1024  # larger files are not read as candidates
CACHE_KEEP = 16  # extracted kernels kept (the most recently used)
CACHE_MAX_AGE = 7 * 24 * 3600  # seconds unused before an extracted kernel is removed


@dataclass(frozen=True)
class IsoKernel:
    """The kernel found: its path on the disc, its bytes, how it was found."""

    name: str
    data: bytes
    how: str


def _multiboot_elf(data: bytes) -> bool:
    head = data[: MULTIBOOT_SEARCH + 32]
    return head[:4] == ELF_MAGIC and find_multiboot_header(head) is not None


class _Disc:
    """Files of an opened ISO by their Rock Ridge (else Joliet, else ISO 9660) names."""

    def __init__(self, path: Path) -> None:
        import pycdlib
        from pycdlib.pycdlibexception import PyCdlibException

        self._error = PyCdlibException
        self.iso = pycdlib.PyCdlib()
        try:
            self.iso.open(str(path))
        except (PyCdlibException, OSError, ValueError) as exc:
            raise KernelError(f"{path}: not a readable ISO image ({exc})", path=str(path)) from exc
        if self.iso.has_rock_ridge():
            self.kind = "rr_path"
        elif self.iso.has_joliet():
            self.kind = "joliet_path"
        else:
            self.kind = "iso_path"

    def close(self) -> None:
        self.iso.close()

    def read(self, name: str) -> bytes | None:
        out = io.BytesIO()
        try:
            self.iso.get_file_from_iso_fp(out, **{self.kind: name})
        except self._error:
            return None
        return out.getvalue()

    def head(self, name: str, size: int) -> bytes:
        """The first ``size`` bytes of a file (without reading the rest)."""
        try:
            with self.iso.open_file_from_iso(**{self.kind: name}) as fp:
                return bytes(fp.read(size))
        except self._error:
            return b""

    def files(self) -> list[str]:
        names: list[str] = []
        for root, _dirs, files in self.iso.walk(**{self.kind: "/"}):
            names += [f"{root.rstrip('/')}/{f}" for f in files]
        return names

    def size(self, name: str) -> int:
        try:
            record = self.iso.get_record(**{self.kind: name})
        except self._error:
            return 0
        return int(record.get_data_length())


def find_iso_kernel(path: Path) -> IsoKernel | None:
    """The multiboot ELF inside the ISO ``path`` (None when there is none)."""
    disc = _Disc(path)
    try:
        for config in GRUB_CONFIGS:
            text = disc.read(config)
            if text is None:
                continue
            for match in _MULTIBOOT_LINE.finditer(text.decode(errors="replace")):
                name = re.sub(r"^\([^)]*\)", "", match.group(1))  # (cd)/boot/x -> /boot/x
                data = disc.read(name)
                if data is not None and _multiboot_elf(data):
                    return IsoKernel(name, data, f"{config} loads it")
        for name in disc.files():
            if name.endswith(".mod") or disc.size(name) > MAX_KERNEL:
                continue
            if not _multiboot_elf(disc.head(name, MULTIBOOT_SEARCH + 32)):
                continue  # only a candidate's whole file is read
            data = disc.read(name)
            if data is not None and _multiboot_elf(data):
                return IsoKernel(name, data, "the first multiboot ELF on the disc")
        return None
    finally:
        disc.close()


def extract_iso_kernel(path: Path, cache: Path | None = None) -> tuple[Path, IsoKernel] | None:
    """Write the ISO's multiboot ELF to a file gdb can load; its path and what was found.

    The file is named by its SHA-256 in a per-user folder of the temporary directory
    (mode 0700), so the same kernel is written once and two sessions share it safely.
    The folder is kept small: see :func:`prune_cache`."""
    found = find_iso_kernel(path)
    if found is None:
        return None
    folder = cache or Path(tempfile.gettempdir()) / f"lhvdbg-iso-kernels-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    if folder.stat().st_uid != os.getuid() or folder.is_symlink():
        raise KernelError(f"{folder} is not this user's folder", path=str(folder))
    digest = hashlib.sha256(found.data).hexdigest()[:16]
    target = folder / f"{digest}-{Path(found.name).name}"
    if target.exists():
        os.utime(target)  # used now: pruning goes by last use
    else:
        partial = folder / f".{target.name}.{os.getpid()}"
        partial.write_bytes(found.data)
        partial.replace(target)
    prune_cache(folder, keep=target)
    return target, found


def prune_cache(folder: Path, keep: Path, now: float | None = None) -> list[Path]:
    """Remove extracted kernels unused for CACHE_MAX_AGE, and all but the CACHE_KEEP most
    recently used, never ``keep`` (the one in use); also half-written files an interrupted
    extraction left more than an hour ago. Returns what was removed; a file another
    session removes first is simply gone."""
    now = time.time() if now is None else now
    entries = []
    for entry in folder.iterdir():
        try:
            entries.append((entry.stat().st_mtime, entry))
        except OSError:
            continue
    entries.sort(reverse=True)
    removed = []
    kept = 0
    for mtime, entry in entries:
        partial = entry.name.startswith(".")
        if entry == keep or (partial and now - mtime < 3600):
            continue
        if not partial and kept < CACHE_KEEP - 1 and now - mtime < CACHE_MAX_AGE:
            kept += 1
            continue
        with contextlib.suppress(OSError):
            entry.unlink()
            removed.append(entry)
    return removed
