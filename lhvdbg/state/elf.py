"""Kernel ELF facts: bootability checks, symbols, instruction scans.

Pure: the only I/O is reading the file. :func:`inspect_kernel` checks what QEMU's
``-kernel`` needs before anything is launched: ELF magic, class and machine, and a
multiboot header (magic 0x1BADB002) in the first 8 KiB, 32-bit aligned, whose checksum
makes magic + flags + checksum = 0 (mod 2^32). QEMU refuses to load an ELF64 unless the
header sets the "a.out kludge" flag (bit 16) and gives the load addresses itself
(Multiboot Specification 0.6.96 §3.1.1-§3.1.5; QEMU hw/i386/multiboot.c).
:func:`kernel_class_quick` makes the same decision from the first 8 KiB alone, so a
session can start QEMU and gdb before the full read.

Headers, program headers and ``.symtab`` are read with ``struct`` (System V ABI, "Object
Files"): importing pyelftools and parsing symbols through it cost ~30 ms at every session
start. pyelftools reads the DWARF (:func:`dwarf_enum`) and names foreign machines in
error messages; a unit test checks that both readers agree on every firmware image.

:func:`find_lidt` and :func:`find_sti` scan the executable PT_LOAD segments for the
instructions lhvdbg arms breakpoints on (Intel SDM Vol. 2: LIDT is ``0F 01 /3`` with a
memory operand, STI is ``FB``).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lhvdbg.errors import KernelError
from lhvdbg.files import KERNEL, SYMBOLS, FileKind, read_bytes
from lhvdbg.state.symbols import symbolize
from lhvdbg.x86.insn_sites import lidt_sites

ELF_MAGIC = b"\x7fELF"
MULTIBOOT_MAGIC = 0x1BADB002
MULTIBOOT2_MAGIC = 0xE85250D6
MULTIBOOT_SEARCH = 8192
MULTIBOOT_AOUT_KLUDGE = 1 << 16
PF_X = 1


@dataclass(frozen=True)
class MultibootHeader:
    """The multiboot header found in the image (Multiboot 0.6.96 §3.1.2)."""

    offset: int  # file offset of the magic
    flags: int
    checksum: int
    header_addr: int | None = None  # the a.out kludge fields (flags bit 16)
    load_addr: int | None = None
    load_end_addr: int | None = None
    bss_end_addr: int | None = None
    entry_addr: int | None = None

    @property
    def aout_kludge(self) -> bool:
        """Whether the header gives the load addresses itself (flags bit 16)."""
        return bool(self.flags & MULTIBOOT_AOUT_KLUDGE)


@dataclass(frozen=True)
class Segment:
    """A PT_LOAD program header and its file bytes."""

    vaddr: int
    paddr: int
    offset: int
    filesz: int
    memsz: int
    flags: int  # PF_X=1, PF_W=2, PF_R=4
    data: bytes = field(default=b"", repr=False, compare=False)

    @property
    def executable(self) -> bool:
        """PF_X is set."""
        return bool(self.flags & PF_X)

    def contains(self, address: int) -> bool:
        """Whether ``address`` lies in the segment's memory image."""
        return self.vaddr <= address < self.vaddr + self.memsz


@dataclass(frozen=True)
class KernelInfo:
    """What lhvdbg knows about a kernel image."""

    path: Path
    elf_class: int  # 32 or 64
    machine: str  # "EM_386" or "EM_X86_64"
    entry: int
    multiboot: MultibootHeader | None
    segments: tuple[Segment, ...]
    symbols: Mapping[str, int] = field(default_factory=dict)
    sizes: Mapping[str, int] = field(default_factory=dict)
    sha256: str = ""

    @property
    def arch(self) -> str:
        """``amd64`` for an ELF64 x86-64 image, else ``i386``."""
        return "amd64" if self.elf_class == 64 else "i386"

    @property
    def stripped(self) -> bool:
        """No symbol table (or an empty one)."""
        return not self.symbols

    def address_of(self, name: str) -> int | None:
        """The address of a symbol, or None."""
        return self.symbols.get(name)

    def symbolize(self, address: int) -> str:
        """``name`` or ``name+0xoff`` by the one rule of :mod:`lhvdbg.state.symbols`,
        else the hex address."""
        return symbolize(address, self.symbols) or f"{address:#x}"

    def read_vaddr(self, address: int, size: int) -> bytes:
        """The image's bytes at a virtual address (zeros past a segment's file size);
        KernelError when outside every PT_LOAD segment."""
        for seg in self.segments:
            if seg.contains(address) and address + size <= seg.vaddr + seg.memsz:
                start = address - seg.vaddr
                chunk = seg.data[start : start + size]
                return chunk + bytes(size - len(chunk))
        raise KernelError(f"{self.path}: {address:#x}+{size} is not in a loadable segment")


def find_multiboot_header(image: bytes) -> MultibootHeader | None:
    """The first valid multiboot header in the first 8 KiB (32-bit aligned), or None."""
    limit = min(len(image), MULTIBOOT_SEARCH)
    for off in range(0, limit - 11, 4):
        magic, flags, checksum = struct.unpack_from("<III", image, off)
        if magic != MULTIBOOT_MAGIC or (magic + flags + checksum) & 0xFFFFFFFF:
            continue
        if flags & MULTIBOOT_AOUT_KLUDGE and off + 32 <= len(image):
            addrs = struct.unpack_from("<IIIII", image, off + 12)
            return MultibootHeader(off, flags, checksum, *addrs)
        return MultibootHeader(off, flags, checksum)
    return None


def _has_multiboot2(image: bytes) -> bool:
    limit = min(len(image), 32768)
    return any(
        struct.unpack_from("<I", image, off)[0] == MULTIBOOT2_MAGIC
        for off in range(0, limit - 3, 8)
    )


def flat_multiboot_header(head: bytes) -> MultibootHeader | None:
    """The header of a flat multiboot image: not an ELF, its multiboot header carrying the
    a.out kludge (flags bit 16: load and entry addresses in the header, Multiboot 0.6.96
    §3.1.3), which is all a loader needs to place it. None for anything else."""
    if head[:4] == ELF_MAGIC:
        return None
    header = find_multiboot_header(head)
    if header is None or not header.aout_kludge or header.entry_addr is None:
        return None
    return header


def is_flat_multiboot(path: Path | str) -> bool:
    """Whether ``path`` is a flat (a.out kludge, not ELF) multiboot image."""
    return flat_multiboot_header(_head(Path(path))) is not None


def inspect_flat_kernel(path: Path | str) -> KernelInfo:
    """The facts of a flat multiboot image: one loadable, executable segment from the
    header's load addresses (the file from ``load_addr``'s offset up to ``load_end_addr``,
    zeros up to ``bss_end_addr``), the entry ``entry_addr``; no symbols."""
    image = read_bytes(path, KERNEL)
    header = flat_multiboot_header(image[: MULTIBOOT_SEARCH + 32])
    if header is None:
        raise KernelError(f"{path}: not a flat multiboot image", path=str(path))
    assert header.header_addr is not None and header.load_addr is not None
    assert header.entry_addr is not None
    start = header.offset - (header.header_addr - header.load_addr)
    end = len(image)
    if header.load_end_addr:
        end = start + header.load_end_addr - header.load_addr
    if not 0 <= start < end <= len(image):
        raise KernelError(
            f"{path}: the multiboot header's load addresses fall outside the file",
            path=str(path),
        )
    memsz = end - start
    if header.bss_end_addr:
        memsz = max(memsz, header.bss_end_addr - header.load_addr)
    segment = Segment(
        header.load_addr, header.load_addr, start, end - start, memsz, PF_X | 2 | 4,
        image[start:end],
    )  # fmt: skip
    return KernelInfo(
        path=Path(path),
        elf_class=32,
        machine="EM_386",
        entry=header.entry_addr,
        multiboot=header,
        segments=(segment,),
        sha256=_sha256(image),
    )


def inspect_kernel(path: Path | str) -> KernelInfo:
    """Check that ``path`` is a multiboot kernel QEMU can boot with ``-kernel`` (an ELF,
    or a flat image with the a.out kludge) and read its facts; KernelError (one line
    naming the file and the problem) otherwise."""
    if is_flat_multiboot(path):
        return inspect_flat_kernel(path)
    info = inspect_elf(path)
    header = info.multiboot
    if header is None:
        image = read_bytes(info.path, KERNEL)
        hint = (
            " (it has a multiboot2 header, which QEMU -kernel cannot load: use --cdrom)"
            if _has_multiboot2(image)
            else ""
        )
        raise KernelError(
            f"{info.path}: no valid multiboot header in the first 8 KiB{hint}",
            path=str(info.path),
        )
    if info.elf_class == 64 and not header.aout_kludge:
        raise KernelError(
            f"{info.path}: a 64-bit ELF needs the multiboot a.out kludge (flags bit 16) "
            "for QEMU -kernel",
            path=str(info.path),
        )
    return info


def kernel_class_quick(path: Path | str) -> int:
    """The ELF class (32 or 64) of a kernel QEMU ``-kernel`` can boot, judged from its
    first 8 KiB without pyelftools (a session starts QEMU and gdb on this, and reads the
    full facts while they start). Whatever fails the quick look is handed to
    :func:`inspect_kernel`, which raises the detailed KernelError."""
    head = _head(Path(path))
    elf_class = _x86_elf_class(head)
    if elf_class:
        header = find_multiboot_header(head)
        if header is not None and (elf_class == 32 or header.aout_kludge):
            return elf_class
    if flat_multiboot_header(head) is not None:
        return 32  # a flat image is entered in 32-bit protected mode
    return inspect_kernel(path).elf_class


def elf_class_quick(path: Path | str) -> int:
    """Like :func:`kernel_class_quick` for a symbol file (no multiboot header needed);
    falls back to :func:`inspect_elf` for its KernelError."""
    elf_class = _x86_elf_class(_head(Path(path)))
    return elf_class or inspect_elf(path, SYMBOLS).elf_class


def _head(path: Path) -> bytes:
    """The first bytes of ``path``; empty when it is not a readable regular file within the
    limit (the full check then raises the detailed error)."""
    try:
        return read_bytes(path, KERNEL, head=MULTIBOOT_SEARCH + 32)
    except KernelError:
        return b""


def _x86_elf_class(head: bytes) -> int:
    """32 or 64 for a little-endian x86 ELF header (the pairs inspect_elf accepts), else 0."""
    if len(head) < 52 or head[:4] != ELF_MAGIC or head[5] != 1:
        return 0
    elf_class = {1: 32, 2: 64}.get(head[4], 0)
    (machine,) = struct.unpack_from("<H", head, 18)
    if machine == 3 or (machine == 62 and elf_class == 64):  # EM_386, EM_X86_64
        return elf_class
    return 0


def inspect_elf(path: Path | str, kind: FileKind = KERNEL) -> KernelInfo:
    """Read an x86 ELF's facts (a symbol file need not be bootable: ``multiboot`` may be
    None); KernelError when it is missing, not an ELF, malformed or not x86."""
    path = Path(path)
    image = read_bytes(path, kind)
    if image[:4] != ELF_MAGIC:
        raise KernelError(f"{path}: not an ELF file (no ELF magic)", path=str(path))
    if len(image) < 52:
        raise KernelError(f"{path}: truncated ELF header", path=str(path))
    try:
        elf = _ElfReader(image)
        segments = elf.segments()
        symbols, sizes = elf.symbols()
    except (struct.error, ValueError, IndexError, OverflowError) as exc:
        raise KernelError(f"{path}: malformed ELF: {exc}", path=str(path)) from exc
    machine = _machine_name(elf.machine)
    if machine not in ("EM_386", "EM_X86_64") or (elf.elf_class, machine) == (32, "EM_X86_64"):
        raise KernelError(
            f"{path}: not an x86 kernel (ELF{elf.elf_class}, {machine})", path=str(path)
        )
    return KernelInfo(
        path=path,
        elf_class=elf.elf_class,
        machine=machine,
        entry=elf.entry,
        multiboot=find_multiboot_header(image),
        segments=segments,
        symbols=symbols,
        sizes=sizes,
        sha256=_sha256(image),
    )


def _sha256(image: bytes) -> str:
    """The image's SHA-256 (hashlib imported here: a session checks a kernel's first
    8 KiB before QEMU and gdb start, and reads the whole file only after)."""
    import hashlib

    return hashlib.sha256(image).hexdigest()


# ELF constants (System V ABI, "ELF Header", "Program Header", "Sections", "Symbol Table")
_PT_LOAD = 1
_SHT_SYMTAB = 2
_SHN_UNDEF = 0
_SHN_ABS = 0xFFF1  # an assembler constant (`.set`), not an address
_SHN_XINDEX = 0xFFFF
_STT_SECTION, _STT_FILE = 3, 4
_STB_LOCAL = 0
_MACHINES = {3: "EM_386", 62: "EM_X86_64"}


def _machine_name(number: int) -> str:
    """pyelftools' name of an ``e_machine`` value (``EM_386``...)."""
    if number in _MACHINES:
        return _MACHINES[number]
    from elftools.elf.enums import ENUM_E_MACHINE  # only for the error message

    return next((k for k, v in ENUM_E_MACHINE.items() if v == number), f"machine {number}")


class _ElfReader:
    """The parts of an ELF lhvdbg uses, read with ``struct`` (pyelftools' import and
    per-symbol parsing cost ~30 ms, on the path of every session start)."""

    def __init__(self, image: bytes) -> None:
        self.image = image
        self.elf_class = {1: 32, 2: 64}.get(image[4], 0)
        if not self.elf_class:
            raise ValueError(f"invalid ELF class {image[4]}")
        if image[5] not in (1, 2):
            raise ValueError(f"invalid data encoding {image[5]}")
        self.order = "<" if image[5] == 1 else ">"
        is64 = self.elf_class == 64
        fields = struct.unpack_from(
            self.order + ("HHIQQQIHHHHHH" if is64 else "HHIIIIIHHHHHH"), image, 16
        )
        (_, self.machine, _, self.entry, self.phoff, self.shoff, _, _) = fields[:8]
        self.phentsize, self.phnum, self.shentsize, self.shnum, self.shstrndx = fields[8:]

    def _sections(self) -> list[tuple[int, int, int, int, int]]:
        """(name offset, type, file offset, size, link) of each section header."""
        if not self.shoff:
            return []
        is64 = self.elf_class == 64
        fmt = self.order + ("IIQQQQIIQQ" if is64 else "IIIIIIIIII")

        def at(i: int) -> tuple[int, int, int, int, int]:
            f = struct.unpack_from(fmt, self.image, self.shoff + i * self.shentsize)
            return f[0], f[1], f[4], f[5], f[6]

        count = self.shnum or at(0)[3]  # e_shnum 0: the count is section 0's sh_size
        return [at(i) for i in range(count)]

    def _bytes(self, offset: int, size: int) -> bytes:
        data = self.image[offset : offset + size]
        if len(data) != size:
            raise ValueError(f"section data at {offset:#x}+{size:#x} is past the end of the file")
        return data

    def segments(self) -> tuple[Segment, ...]:
        """The PT_LOAD program headers with their file bytes."""
        out = []
        is64 = self.elf_class == 64
        fmt = self.order + ("IIQQQQQQ" if is64 else "IIIIIIII")
        for i in range(self.phnum):
            f = struct.unpack_from(fmt, self.image, self.phoff + i * self.phentsize)
            if is64:
                p_type, flags, off, vaddr, paddr, filesz, memsz, _ = f
            else:
                p_type, off, vaddr, paddr, filesz, memsz, flags, _ = f
            if p_type != _PT_LOAD:
                continue
            data = self.image[off : off + filesz]
            out.append(Segment(vaddr, paddr, off, filesz, memsz, flags, data))
        return tuple(out)

    def symbols(self) -> tuple[dict[str, int], dict[str, int]]:
        """Name → value and name → size from ``.symtab`` (global wins over local); absolute
        symbols are constants, not places, and would name unrelated addresses."""
        symbols: dict[str, int] = {}
        sizes: dict[str, int] = {}
        sections = self._sections()
        if not sections:
            return symbols, sizes
        index = self.shstrndx if self.shstrndx != _SHN_XINDEX else sections[0][4]
        _, _, names_off, names_size, _ = sections[index]
        names = self._bytes(names_off, names_size)
        symtab = next(
            (s for s in sections if s[1] == _SHT_SYMTAB and _cstr(names, s[0]) == ".symtab"), None
        )
        if symtab is None:
            return symbols, sizes
        _, _, offset, size, link = symtab
        _, _, str_off, str_size, _ = sections[link]
        strtab = self._bytes(str_off, str_size)
        is64 = self.elf_class == 64
        fmt = self.order + ("IBBHQQ" if is64 else "IIIBBH")
        entry = struct.calcsize(fmt)
        data = self._bytes(offset, size - size % entry)
        for f in struct.iter_unpack(fmt, data):
            if is64:
                name_off, info, _, shndx, value, sym_size = f
            else:
                name_off, value, sym_size, info, _, shndx = f
            name = _cstr(strtab, name_off)
            if (
                not name
                or info & 0xF in (_STT_FILE, _STT_SECTION)
                or shndx in (_SHN_UNDEF, _SHN_ABS)
            ):
                continue
            if name in symbols and info >> 4 == _STB_LOCAL:
                continue
            symbols[name] = value
            sizes[name] = sym_size
        return symbols, sizes


def _cstr(table: bytes, offset: int) -> str:
    """The NUL-terminated string at ``offset`` of a string table."""
    if offset >= len(table):
        raise ValueError(f"string offset {offset:#x} past its table")
    end = table.find(b"\0", offset)
    return table[offset : end if end >= 0 else len(table)].decode("utf-8", "replace")


def find_lidt(info: KernelInfo) -> list[int]:
    """Addresses where a ``lidt`` (``0F 01 /3``, memory operand) may start in executable
    segments: the opcode's address and, when one or two prefix bytes precede it, those
    addresses too (a breakpoint at a non-instruction address never fires under TCG)."""
    found: set[int] = set()
    for seg in info.segments:
        if seg.executable:
            found |= lidt_sites(seg.data, seg.vaddr)
    return sorted(found)


def find_sti(info: KernelInfo) -> list[int]:
    """Addresses of every ``FB`` byte in executable segments (possible ``sti``)."""
    out: list[int] = []
    for seg in info.segments:
        if seg.executable:
            data = seg.data
            i = data.find(b"\xfb")
            while i >= 0:
                out.append(seg.vaddr + i)
                i = data.find(b"\xfb", i + 1)
    return out


def dwarf_enum(path: Path | str, enum_name: str) -> dict[int, str]:
    """Value → enumerator name of the C enum ``enum_name`` from the ELF's DWARF (empty
    when the file has no debug info or no such enum)."""
    import io

    from elftools.common.exceptions import DWARFError, ELFError
    from elftools.elf.elffile import ELFFile

    try:
        elf = ELFFile(io.BytesIO(read_bytes(path, SYMBOLS)))
        if not elf.has_dwarf_info():
            return {}
        wanted = enum_name.encode()
        for cu in elf.get_dwarf_info().iter_CUs():
            for die in cu.iter_DIEs():
                name = die.attributes.get("DW_AT_name")
                if die.tag != "DW_TAG_enumeration_type" or name is None or name.value != wanted:
                    continue
                out: dict[int, str] = {}
                for child in die.iter_children():
                    cname = child.attributes.get("DW_AT_name")
                    cval = child.attributes.get("DW_AT_const_value")
                    if cname is not None and cval is not None:
                        out[int(cval.value)] = cname.value.decode(errors="replace")
                return out
    except (OSError, KernelError, ELFError, DWARFError, ValueError, KeyError):
        return {}
    return {}
