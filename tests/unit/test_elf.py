"""lhvdbg.state.elf on ELF images built byte by byte (ELF spec: Ehdr/Phdr/Shdr/Sym)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from lhvdbg.errors import KernelError
from lhvdbg.state.elf import (
    MULTIBOOT_MAGIC,
    KernelInfo,
    dwarf_enum,
    elf_class_quick,
    find_lidt,
    find_multiboot_header,
    find_sti,
    inspect_elf,
    inspect_kernel,
    kernel_class_quick,
)

TEXT_OFFSET = 0x100
VADDR = 0x100000


def multiboot(flags: int = 0, *, checksum: int | None = None, aout: tuple[int, ...] = ()) -> bytes:
    """A multiboot header: magic, flags, checksum (+ the five a.out kludge addresses)."""
    if checksum is None:
        checksum = -(MULTIBOOT_MAGIC + flags) & 0xFFFFFFFF
    return struct.pack("<III", MULTIBOOT_MAGIC, flags, checksum) + struct.pack(
        f"<{len(aout)}I", *aout
    )


def build_elf(
    text: bytes,
    *,
    elf_class: int = 32,
    machine: int | None = None,
    symbols: dict[str, tuple[int, int]] | None = None,
    memsz_extra: int = 0,
    flags: int = 5,  # PF_R | PF_X
    text_offset: int = TEXT_OFFSET,
    absolute: frozenset[str] = frozenset(),
) -> bytes:
    """An executable ELF: one PT_LOAD over ``text`` at VADDR, and (unless ``symbols`` is
    None) .symtab/.strtab/.shstrtab sections (names in ``absolute`` are SHN_ABS, as an
    assembler's ``.set`` makes them). Entry = VADDR + 12."""
    is64 = elf_class == 64
    machine = machine if machine is not None else (62 if is64 else 3)
    ehsize, phentsize, shentsize = (64, 56, 64) if is64 else (52, 32, 40)
    body = bytearray(text_offset)
    body += text
    sections: list[bytes] = []
    shnum = 0
    shoff = 0
    shstrndx = 0
    if symbols is not None:
        strtab = b"\0"
        names: dict[str, int] = {}
        for name in symbols:
            names[name] = len(strtab)
            strtab += name.encode() + b"\0"
        syms = bytearray(24 if is64 else 16)  # the null symbol
        for name, (value, size) in symbols.items():
            info = (1 << 4) | 2  # STB_GLOBAL, STT_FUNC
            shndx = 0xFFF1 if name in absolute else 1
            if is64:
                syms += struct.pack("<IBBHQQ", names[name], info, 0, shndx, value, size)
            else:
                syms += struct.pack("<IIIBBH", names[name], value, size, info, 0, shndx)
        shstr = b"\0.text\0.symtab\0.strtab\0.shstrtab\0"
        symoff = len(body)
        body += syms
        stroff = len(body)
        body += strtab
        shstroff = len(body)
        body += shstr
        while len(body) % 8:
            body += b"\0"
        shoff = len(body)

        def sh(name: int, typ: int, fl: int, addr: int, off: int, size: int, link: int,
               info: int, align: int, entsize: int) -> bytes:  # fmt: skip
            if is64:
                return struct.pack(
                    "<IIQQQQIIQQ", name, typ, fl, addr, off, size, link, info, align, entsize
                )
            return struct.pack(
                "<IIIIIIIIII", name, typ, fl, addr, off, size, link, info, align, entsize
            )

        sections = [
            bytes(shentsize),
            sh(1, 1, 6, VADDR, text_offset, len(text), 0, 0, 4, 0),
            sh(7, 2, 0, 0, symoff, len(syms), 3, 1, 8, 24 if is64 else 16),
            sh(15, 3, 0, 0, stroff, len(strtab), 0, 0, 1, 0),
            sh(23, 3, 0, 0, shstroff, len(shstr), 0, 0, 1, 0),
        ]
        shnum, shstrndx = len(sections), 4
    phoff = ehsize
    ident = b"\x7fELF" + bytes([2 if is64 else 1, 1, 1]) + bytes(9)
    entry = VADDR + 12
    if is64:
        ehdr = ident + struct.pack(
            "<HHIQQQIHHHHHH", 2, machine, 1, entry, phoff, shoff, 0, ehsize, phentsize, 1,
            shentsize, shnum, shstrndx,
        )  # fmt: skip
        phdr = struct.pack(
            "<IIQQQQQQ", 1, flags, text_offset, VADDR, VADDR, len(text),
            len(text) + memsz_extra, 0x10,
        )  # fmt: skip
    else:
        ehdr = ident + struct.pack(
            "<HHIIIIIHHHHHH", 2, machine, 1, entry, phoff, shoff, 0, ehsize, phentsize, 1,
            shentsize, shnum, shstrndx,
        )  # fmt: skip
        phdr = struct.pack(
            "<IIIIIIII", 1, text_offset, VADDR, VADDR, len(text), len(text) + memsz_extra,
            flags, 0x10,
        )  # fmt: skip
    body[0 : len(ehdr)] = ehdr
    body[phoff : phoff + len(phdr)] = phdr
    return bytes(body) + b"".join(sections)


# code after the header: lidt (%eax) = 0f 01 18; lgdt (%eax) = 0f 01 10; vmrun = 0f 01 d8;
# REX.W lidt with SIB+disp32 = 48 0f 01 1c 25 <disp32>; sti = fb; hlt = f4
CODE = (
    b"\x0f\x01\x18"  # +0  lidt (%eax)
    b"\x0f\x01\x10"  # +3  lgdt (%eax): reg field 2, not a lidt
    b"\x0f\x01\xd8"  # +6  vmrun: mod=3, not a lidt
    b"\x48\x0f\x01\x1c\x25\x00\x10\x00\x00"  # +9  lidt 0x1000 with REX.W
    b"\xfb\xf4"  # +18 sti; hlt
)


def kernel32(tmp_path: Path, **kwargs: object) -> Path:
    text = multiboot() + CODE
    path = tmp_path / "k32.elf"
    symbols = kwargs.pop("symbols", {"_start": (VADDR + 12, 0), "handler": (VADDR + 21, 4)})
    path.write_bytes(build_elf(text, symbols=symbols, **kwargs))  # type: ignore[arg-type]
    return path


def test_elf32_multiboot_kernel(tmp_path: Path) -> None:
    info = inspect_kernel(kernel32(tmp_path))
    assert (info.elf_class, info.machine, info.arch) == (32, "EM_386", "i386")
    assert info.entry == VADDR + 12
    assert info.multiboot is not None
    assert info.multiboot.offset == TEXT_OFFSET
    assert info.multiboot.flags == 0 and not info.multiboot.aout_kludge
    assert info.symbols == {"_start": VADDR + 12, "handler": VADDR + 21}
    assert len(info.sha256) == 64
    assert [s.vaddr for s in info.segments] == [VADDR] and info.segments[0].executable


def test_elf64_needs_the_aout_kludge(tmp_path: Path) -> None:
    path = tmp_path / "k64.elf"
    path.write_bytes(build_elf(multiboot() + CODE, elf_class=64, symbols={}))
    with pytest.raises(KernelError, match=r"a\.out kludge") as err:
        inspect_kernel(path)
    assert "\n" not in str(err.value)
    aout = (VADDR, VADDR, VADDR + 0x40, VADDR + 0x80, VADDR + 32)
    path.write_bytes(build_elf(multiboot(1 << 16, aout=aout) + CODE, elf_class=64, symbols={}))
    info = inspect_kernel(path)
    assert info.elf_class == 64 and info.arch == "amd64" and info.machine == "EM_X86_64"
    assert info.multiboot is not None and info.multiboot.aout_kludge
    assert info.multiboot.load_end_addr == VADDR + 0x40
    assert info.multiboot.entry_addr == VADDR + 32


def test_bad_checksum_and_far_header_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bad.elf"
    path.write_bytes(build_elf(multiboot(checksum=0x1234) + CODE, symbols={}))
    with pytest.raises(KernelError, match="no valid multiboot header in the first 8 KiB"):
        inspect_kernel(path)
    path.write_bytes(build_elf(multiboot() + CODE, symbols={}, text_offset=0x2000))
    with pytest.raises(KernelError, match="no valid multiboot header"):
        inspect_kernel(path)
    # the same image is a fine symbol file
    assert inspect_elf(path).multiboot is None


def test_multiboot2_only_gets_a_hint(tmp_path: Path) -> None:
    mb2 = struct.pack("<IIII", 0xE85250D6, 0, 16, -(0xE85250D6 + 16) & 0xFFFFFFFF)
    path = tmp_path / "mb2.elf"
    path.write_bytes(build_elf(mb2 + CODE, symbols={}))
    with pytest.raises(KernelError, match=r"multiboot2 header.*--cdrom"):
        inspect_kernel(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"#!/bin/sh\necho not a kernel\n", "not an ELF file"),
        (b"\x7fELF\x01\x01", "truncated ELF header"),
    ],
)
def test_not_elf(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x"
    path.write_bytes(content)
    with pytest.raises(KernelError, match=message):
        inspect_kernel(path)


def test_missing_directory_and_foreign_machine(tmp_path: Path) -> None:
    with pytest.raises(KernelError, match="kernel not found"):
        inspect_kernel(tmp_path / "nope.elf")
    with pytest.raises(KernelError, match="is a directory"):
        inspect_kernel(tmp_path)
    arm = tmp_path / "arm.elf"
    arm.write_bytes(build_elf(multiboot() + CODE, machine=40, symbols={}))
    with pytest.raises(KernelError, match=r"not an x86 kernel \(ELF32, EM_ARM\)"):
        inspect_kernel(arm)


def test_stripped_kernel_has_no_symbols_and_symbolizes_to_hex(tmp_path: Path) -> None:
    path = tmp_path / "stripped.elf"
    path.write_bytes(build_elf(multiboot() + CODE, symbols=None))
    info = inspect_kernel(path)
    assert info.stripped and info.symbols == {}
    assert info.symbolize(VADDR + 12) == "0x10000c"


def test_symbolize_and_read_vaddr(tmp_path: Path) -> None:
    info = inspect_kernel(kernel32(tmp_path, memsz_extra=0x100))
    assert info.symbolize(VADDR + 12) == "_start"
    assert info.symbolize(VADDR + 15) == "_start+0x3"
    assert info.symbolize(VADDR + 22) == "handler+0x1"
    # past handler's 4 bytes: still named after the nearest symbol below (the one rule of
    # lhvdbg.state.symbols, sizes aside, so every command names an address alike)
    assert info.symbolize(VADDR + 26) == "handler+0x5"
    assert info.symbolize(VADDR - 1) == "0xfffff"  # outside every segment
    assert info.read_vaddr(VADDR, 4) == struct.pack("<I", MULTIBOOT_MAGIC)
    size = len(multiboot() + CODE)
    assert info.read_vaddr(VADDR + size, 8) == bytes(8)  # .bss part reads as zeros
    with pytest.raises(KernelError, match="not in a loadable segment"):
        info.read_vaddr(VADDR + size + 0x100, 4)


def test_absolute_symbols_are_constants_not_places(tmp_path: Path) -> None:
    # gas's `.set vector, 0x100` leaves an SHN_ABS symbol; it must not name code near it
    symbols = {"_start": (VADDR + 12, 0), "vector": (VADDR + 20, 0)}
    path = tmp_path / "abs.elf"
    path.write_bytes(build_elf(multiboot() + CODE, symbols=symbols, absolute=frozenset({"vector"})))
    info = inspect_kernel(path)
    assert info.symbols == {"_start": VADDR + 12}
    assert info.symbolize(VADDR + 22) == "_start+0xa"
    assert info.address_of("vector") is None


def test_find_lidt_and_sti(tmp_path: Path) -> None:
    info = inspect_kernel(kernel32(tmp_path))
    code = VADDR + len(multiboot())
    # lidt at +0; REX.W lidt at +9 (prefix) and +10 (opcode); not lgdt (+3) or vmrun (+6)
    assert find_lidt(info) == [code, code + 9, code + 10]
    assert find_sti(info) == [code + 18]


def test_find_lidt_ignores_data_segments(tmp_path: Path) -> None:
    path = tmp_path / "data.elf"
    path.write_bytes(build_elf(multiboot() + CODE, symbols={}, flags=6))  # PF_R | PF_W
    info = inspect_kernel(path)
    assert find_lidt(info) == [] and find_sti(info) == []


def test_find_multiboot_header_alignment() -> None:
    header = multiboot()
    assert find_multiboot_header(b"\0" * 8 + header) is not None
    assert find_multiboot_header(b"\0" * 6 + header) is None  # not 32-bit aligned


def test_dwarf_enum_without_debug_info(tmp_path: Path) -> None:
    assert dwarf_enum(kernel32(tmp_path), "lhv_exit_code") == {}
    assert dwarf_enum(tmp_path / "missing.elf", "lhv_exit_code") == {}


SEGMENT_FIELDS = ("p_vaddr", "p_paddr", "p_offset", "p_filesz", "p_memsz", "p_flags")


Facts = tuple[int, str, int, list[tuple[int, ...]], dict[str, tuple[int, int]]]


def _pyelftools_facts(path: Path) -> Facts:
    """The same facts read with pyelftools (the reference for the struct reader)."""
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        elf = ELFFile(f)
        segments = [
            tuple(int(seg[k]) for k in SEGMENT_FIELDS)
            for seg in elf.iter_segments()
            if seg["p_type"] == "PT_LOAD"
        ]
        symbols: dict[str, tuple[int, int]] = {}
        symtab = elf.get_section_by_name(".symtab")
        for sym in symtab.iter_symbols() if symtab is not None else []:
            skip = sym["st_info"]["type"] in ("STT_FILE", "STT_SECTION")
            if not sym.name or skip or sym["st_shndx"] in ("SHN_UNDEF", "SHN_ABS"):
                continue
            if sym.name in symbols and sym["st_info"]["bind"] == "STB_LOCAL":
                continue
            symbols[sym.name] = (int(sym["st_value"]), int(sym["st_size"]))
        return elf.elfclass, str(elf["e_machine"]), int(elf["e_entry"]), segments, symbols


def _facts(info: KernelInfo) -> Facts:
    segments = [(s.vaddr, s.paddr, s.offset, s.filesz, s.memsz, s.flags) for s in info.segments]
    symbols = {name: (value, info.sizes[name]) for name, value in info.symbols.items()}
    return info.elf_class, info.machine, info.entry, segments, symbols


def test_struct_reader_agrees_with_pyelftools(tmp_path: Path, firmware_built: Path) -> None:
    paths = [kernel32(tmp_path)]
    k64 = tmp_path / "k64.elf"
    aout = (VADDR, VADDR, VADDR + 0x40, VADDR + 0x40, VADDR + 32)
    k64.write_bytes(
        build_elf(multiboot(1 << 16, aout=aout) + CODE, elf_class=64, symbols={"x": (VADDR, 1)})
    )
    paths += [k64, *sorted(firmware_built.glob("*/lhv-*.elf"))]
    assert {p.parent.name for p in paths[2:]} == {"amd64", "i386"}
    for path in paths:
        info = inspect_kernel(path)
        assert _facts(info) == _pyelftools_facts(path), path
        assert kernel_class_quick(path) == info.elf_class == elf_class_quick(path)


def test_quick_check_hands_failures_to_the_full_check(tmp_path: Path) -> None:
    bad = tmp_path / "no-mb.elf"
    bad.write_bytes(build_elf(multiboot(checksum=1) + CODE, symbols={}))
    with pytest.raises(KernelError, match="no valid multiboot header"):
        kernel_class_quick(bad)
    assert elf_class_quick(bad) == 32  # a symbol file needs no multiboot header
    k64 = tmp_path / "k64.elf"
    k64.write_bytes(build_elf(multiboot() + CODE, elf_class=64, symbols={}))
    with pytest.raises(KernelError, match=r"a\.out kludge"):
        kernel_class_quick(k64)
    arm = tmp_path / "arm.elf"
    arm.write_bytes(build_elf(multiboot() + CODE, machine=40, symbols={}))
    with pytest.raises(KernelError, match=r"not an x86 kernel \(ELF32, EM_ARM\)"):
        elf_class_quick(arm)
    with pytest.raises(KernelError, match="kernel not found"):
        kernel_class_quick(tmp_path / "missing.elf")


def test_malformed_section_table_is_one_kernel_error(tmp_path: Path) -> None:
    image = bytearray(build_elf(multiboot() + CODE, symbols={"a": (VADDR, 0)}))
    struct.pack_into("<I", image, 32, len(image) + 0x1000)  # e_shoff past the end
    path = tmp_path / "bad-shoff.elf"
    path.write_bytes(bytes(image))
    with pytest.raises(KernelError, match="malformed ELF"):
        inspect_kernel(path)
