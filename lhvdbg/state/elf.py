"""Kernel ELF facts with pyelftools: bootability checks and symbols (pure, no I/O but
reading the file).

:func:`inspect_kernel` checks what QEMU's ``-kernel`` needs before anything is launched:
ELF magic, class, machine, and a multiboot header (magic 0x1BADB002) in the first 8 KiB,
4-byte aligned, with a valid checksum; a 64-bit ELF also needs the a.out kludge flag
(bit 16) because QEMU refuses to load ELF64 otherwise. (Multiboot Specification 0.6.96
§3.1.1-3.1.5.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

MULTIBOOT_MAGIC = 0x1BADB002
MULTIBOOT_SEARCH = 8192
MULTIBOOT_AOUT_KLUDGE = 1 << 16


@dataclass(frozen=True)
class MultibootHeader:
    """The multiboot header found in the image."""

    offset: int  # file offset
    flags: int
    checksum: int
    header_addr: int | None = None  # a.out kludge fields (flags bit 16)
    load_addr: int | None = None
    load_end_addr: int | None = None
    bss_end_addr: int | None = None
    entry_addr: int | None = None

    @property
    def aout_kludge(self) -> bool:
        return bool(self.flags & MULTIBOOT_AOUT_KLUDGE)


@dataclass(frozen=True)
class Segment:
    """A PT_LOAD segment."""

    vaddr: int
    paddr: int
    offset: int
    filesz: int
    memsz: int
    flags: int  # PF_X=1, PF_W=2, PF_R=4

    @property
    def executable(self) -> bool:
        return bool(self.flags & 1)


@dataclass(frozen=True)
class KernelInfo:
    """What lhvdbg knows about a kernel image."""

    path: Path
    elf_class: int  # 32 or 64
    machine: str  # "EM_386", "EM_X86_64"
    entry: int
    multiboot: MultibootHeader
    segments: tuple[Segment, ...]
    symbols: Mapping[str, int] = field(default_factory=dict)
    sha256: str = ""

    @property
    def arch(self) -> str:
        """``amd64`` for ELF64 x86-64, else ``i386``."""
        return "amd64" if self.elf_class == 64 else "i386"

    @property
    def stripped(self) -> bool:
        return not self.symbols

    def address_of(self, name: str) -> int | None:
        """The address of a symbol, or None."""
        return self.symbols.get(name)

    def symbolize(self, address: int) -> str:
        """``name+0xoff`` for the nearest symbol at or below ``address`` (within its
        size when known), else ``0x...``."""
        raise NotImplementedError

    def read_vaddr(self, address: int, size: int) -> bytes:
        """Bytes of the file image at a virtual address (zeros in .bss)."""
        raise NotImplementedError


def inspect_kernel(path: Path | str) -> KernelInfo:
    """Check that ``path`` is a bootable multiboot ELF and read its facts; KernelError
    (one line, naming the file and what is wrong) otherwise."""
    raise NotImplementedError
