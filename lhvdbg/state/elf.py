"""Kernel ELF facts with pyelftools: bootability checks, symbols, instruction scans.

Pure: the only I/O is reading the file. :func:`inspect_kernel` checks what QEMU's
``-kernel`` needs before anything is launched: ELF magic, class and machine, and a
multiboot header (magic 0x1BADB002) in the first 8 KiB, 32-bit aligned, whose checksum
makes magic + flags + checksum = 0 (mod 2^32). QEMU refuses to load an ELF64 unless the
header sets the "a.out kludge" flag (bit 16) and gives the load addresses itself
(Multiboot Specification 0.6.96 §3.1.1-§3.1.5; QEMU hw/i386/multiboot.c).

:func:`find_lidt` and :func:`find_sti` scan the executable PT_LOAD segments for the
instructions lhvdbg arms breakpoints on (Intel SDM Vol. 2: LIDT is ``0F 01 /3`` with a
memory operand, STI is ``FB``).
"""

from __future__ import annotations

import bisect
import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lhvdbg.errors import KernelError

ELF_MAGIC = b"\x7fELF"
MULTIBOOT_MAGIC = 0x1BADB002
MULTIBOOT2_MAGIC = 0xE85250D6
MULTIBOOT_SEARCH = 8192
MULTIBOOT_AOUT_KLUDGE = 1 << 16
PF_X = 1

# Legacy and REX prefixes that may precede LIDT (operand size, address size, REX.W...).
_PREFIXES = frozenset({0x66, 0x67, *range(0x40, 0x50)})


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
        """``name`` or ``name+0xoff`` for the nearest symbol at or below ``address``
        (inside its size when the size is known) when ``address`` lies in a loadable
        segment, else the hex address."""
        if not any(seg.contains(address) for seg in self.segments):
            return f"{address:#x}"
        ordered = _ordered(self.symbols)
        i = bisect.bisect_right(ordered, (address, "\U0010ffff")) - 1
        for start, name in reversed(ordered[max(0, i - 7) : i + 1]):
            size = self.sizes.get(name, 0)
            if size == 0 or address < start + size:
                off = address - start
                return name if off == 0 else f"{name}+{off:#x}"
        return f"{address:#x}"

    def read_vaddr(self, address: int, size: int) -> bytes:
        """The image's bytes at a virtual address (zeros past a segment's file size);
        KernelError when outside every PT_LOAD segment."""
        for seg in self.segments:
            if seg.contains(address) and address + size <= seg.vaddr + seg.memsz:
                start = address - seg.vaddr
                chunk = seg.data[start : start + size]
                return chunk + bytes(size - len(chunk))
        raise KernelError(f"{self.path}: {address:#x}+{size} is not in a loadable segment")


def _ordered(symbols: Mapping[str, int]) -> list[tuple[int, str]]:
    return sorted((addr, name) for name, addr in symbols.items())


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


def inspect_kernel(path: Path | str) -> KernelInfo:
    """Check that ``path`` is a multiboot ELF QEMU can boot with ``-kernel`` and read its
    facts; KernelError (one line naming the file and the problem) otherwise."""
    info = inspect_elf(path)
    header = info.multiboot
    if header is None:
        image = info.path.read_bytes()
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


def inspect_elf(path: Path | str) -> KernelInfo:
    """Read an x86 ELF's facts (a symbol file need not be bootable: ``multiboot`` may be
    None); KernelError when it is missing, not an ELF, malformed or not x86."""
    import io

    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    path = Path(path)
    try:
        image = path.read_bytes()
    except FileNotFoundError:
        raise KernelError(f"kernel not found: {path}", path=str(path)) from None
    except IsADirectoryError:
        raise KernelError(f"kernel is a directory, not a file: {path}") from None
    except OSError as exc:
        raise KernelError(f"cannot read kernel {path}: {exc.strerror}") from exc
    if image[:4] != ELF_MAGIC:
        raise KernelError(f"{path}: not an ELF file (no ELF magic)", path=str(path))
    if len(image) < 52:
        raise KernelError(f"{path}: truncated ELF header", path=str(path))
    try:
        elf = ELFFile(io.BytesIO(image))
        elf_class = int(elf.elfclass)
        machine = str(elf["e_machine"])
        entry = int(elf["e_entry"])
        segments = _segments(elf, image)
        symbols, sizes = _symbols(elf)
    except (ELFError, struct.error, ValueError, KeyError) as exc:
        raise KernelError(f"{path}: malformed ELF: {exc}", path=str(path)) from exc
    if machine not in ("EM_386", "EM_X86_64") or (elf_class, machine) == (32, "EM_X86_64"):
        raise KernelError(f"{path}: not an x86 kernel (ELF{elf_class}, {machine})", path=str(path))
    return KernelInfo(
        path=path,
        elf_class=elf_class,
        machine=machine,
        entry=entry,
        multiboot=find_multiboot_header(image),
        segments=segments,
        symbols=symbols,
        sizes=sizes,
        sha256=hashlib.sha256(image).hexdigest(),
    )


def _segments(elf: object, image: bytes) -> tuple[Segment, ...]:
    out = []
    for seg in elf.iter_segments():  # type: ignore[attr-defined]
        if seg["p_type"] != "PT_LOAD":
            continue
        off, filesz = int(seg["p_offset"]), int(seg["p_filesz"])
        out.append(
            Segment(
                vaddr=int(seg["p_vaddr"]),
                paddr=int(seg["p_paddr"]),
                offset=off,
                filesz=filesz,
                memsz=int(seg["p_memsz"]),
                flags=int(seg["p_flags"]),
                data=image[off : off + filesz],
            )
        )
    return tuple(out)


def _symbols(elf: object) -> tuple[dict[str, int], dict[str, int]]:
    symbols: dict[str, int] = {}
    sizes: dict[str, int] = {}
    symtab = elf.get_section_by_name(".symtab")  # type: ignore[attr-defined]
    if symtab is None or not hasattr(symtab, "iter_symbols"):
        return symbols, sizes
    for sym in symtab.iter_symbols():
        name = sym.name
        kind = sym["st_info"]["type"]
        if not name or kind in ("STT_FILE", "STT_SECTION") or sym["st_shndx"] == "SHN_UNDEF":
            continue
        # prefer global over local when a name repeats
        if name in symbols and sym["st_info"]["bind"] == "STB_LOCAL":
            continue
        symbols[name] = int(sym["st_value"])
        sizes[name] = int(sym["st_size"])
    return symbols, sizes


def find_lidt(info: KernelInfo) -> list[int]:
    """Addresses where a ``lidt`` (``0F 01 /3``, memory operand) may start in executable
    segments: the opcode's address and, when one or two prefix bytes precede it, those
    addresses too (a breakpoint at a non-instruction address never fires under TCG)."""
    found: set[int] = set()
    for seg in info.segments:
        if not seg.executable:
            continue
        data = seg.data
        start = 0
        while True:
            i = data.find(b"\x0f\x01", start)
            if i < 0 or i + 2 >= len(data):
                break
            start = i + 1
            modrm = data[i + 2]
            if (modrm >> 3) & 7 != 3 or modrm >> 6 == 3:
                continue
            found.add(seg.vaddr + i)
            j = i
            while j > 0 and i - j < 2 and data[j - 1] in _PREFIXES:
                j -= 1
                found.add(seg.vaddr + j)
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
        elf = ELFFile(io.BytesIO(Path(path).read_bytes()))
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
    except (OSError, ELFError, DWARFError, ValueError, KeyError):
        return {}
    return {}
