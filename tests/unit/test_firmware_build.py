"""The firmware build: every variant's ELF as QEMU's multiboot loader and gdb need it.

Checked with pyelftools on the built files (no QEMU): ELF class and machine, one PT_LOAD
at 1 MiB, the multiboot header (first 8 KiB, checksum, and for amd64 the a.out-kludge
addresses that must agree with the segment), the symbols other parts rely on, DWARF,
and that each image carries its own variant's configuration.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from lhvdbg.x86.segments import segment_descriptor_layout
from tests.conftest import firmware_elf
from tests.firmware_facts import ARCH_VARIANTS, VARIANTS, facts

BUILDS = ARCH_VARIANTS  # firmware/Makefile's VARIANTS_<arch>
LOAD_ADDRESS = 0x100000
MULTIBOOT_MAGIC = 0x1BADB002
MULTIBOOT_SEARCH = 8192  # the header must lie in the first 8 KiB, 4-byte aligned
AOUT_KLUDGE = 1 << 16
SYMBOLS = (
    "gdt",
    "idt",
    "tss",
    "pit_ticks",
    "lapic_ticks",
    "boot_stack",
    "boot_stack_top",
    "boot_stack_guard",
    "kernel_main",
    "isr_stub_table",
    "isr_8",
    "lhv_config",
)


def load(arch: str, variant: str) -> tuple[ELFFile, bytes]:
    data = firmware_elf(arch, variant).read_bytes()
    return ELFFile(io.BytesIO(data)), data


def multiboot_header(data: bytes) -> tuple[int, tuple[int, ...]]:
    """File offset and the eight header words (magic .. entry_addr) of the multiboot header."""
    for off in range(0, min(len(data), MULTIBOOT_SEARCH) - 12, 4):
        if struct.unpack_from("<I", data, off)[0] == MULTIBOOT_MAGIC:
            words = struct.unpack_from("<8I", data + bytes(32), off)
            return off, words
    raise AssertionError("no multiboot header in the first 8 KiB")


def symbols(elf: ELFFile) -> dict[str, tuple[int, int]]:
    """name -> (address, size) from .symtab."""
    symtab = elf.get_section_by_name(".symtab")
    assert isinstance(symtab, SymbolTableSection), "stripped ELF"
    return {s.name: (s["st_value"], s["st_size"]) for s in symtab.iter_symbols()}


def read_vaddr(elf: ELFFile, data: bytes, address: int, size: int) -> bytes:
    (seg,) = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
    offset = address - seg["p_vaddr"]
    assert offset >= 0 and offset + size <= seg["p_filesz"], hex(address)
    return data[seg["p_offset"] + offset : seg["p_offset"] + offset + size]


@pytest.mark.parametrize(("arch", "variant"), BUILDS)
def test_elf_header_and_single_load_segment(firmware_built: Path, arch: str, variant: str) -> None:
    elf, _ = load(arch, variant)
    assert elf.elfclass == (64 if arch == "amd64" else 32)
    assert elf["e_machine"] == ("EM_X86_64" if arch == "amd64" else "EM_386")
    assert elf["e_type"] == "ET_EXEC"
    loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
    assert len(loads) == 1
    (seg,) = loads
    assert seg["p_vaddr"] == seg["p_paddr"] == LOAD_ADDRESS
    assert seg["p_filesz"] < seg["p_memsz"]  # .bss (page tables, stacks) is not in the file
    assert seg["p_vaddr"] <= elf["e_entry"] < seg["p_vaddr"] + seg["p_filesz"]
    assert elf.has_dwarf_info() and elf.get_section_by_name(".debug_info") is not None


@pytest.mark.parametrize(("arch", "variant"), BUILDS)
def test_multiboot_header(firmware_built: Path, arch: str, variant: str) -> None:
    elf, data = load(arch, variant)
    offset, words = multiboot_header(data)
    magic, flags, checksum, header_addr, load_addr, load_end, bss_end, entry = words
    assert (magic + flags + checksum) & 0xFFFFFFFF == 0
    (seg,) = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
    if arch == "i386":
        assert not flags & AOUT_KLUDGE  # a plain ELF32: QEMU and GRUB load it by its headers
        return
    # amd64: QEMU refuses an ELF64 unless the header gives the load addresses itself.
    assert flags & AOUT_KLUDGE
    assert load_addr == seg["p_paddr"]
    assert header_addr - load_addr == offset - seg["p_offset"]  # where QEMU reads the image from
    assert load_end == seg["p_paddr"] + seg["p_filesz"]
    assert bss_end == seg["p_paddr"] + seg["p_memsz"]
    assert entry == elf["e_entry"]


@pytest.mark.parametrize(("arch", "variant"), BUILDS)
def test_symbols_others_rely_on(firmware_built: Path, arch: str, variant: str) -> None:
    elf, _ = load(arch, variant)
    syms = symbols(elf)
    missing = [name for name in SYMBOLS if name not in syms]
    assert not missing
    word = 8 if arch == "amd64" else 4
    assert syms["idt"][1] == 256 * 2 * word  # 256 gates of 16 (amd64) or 8 (i386) bytes
    assert syms["gdt"][1] == (8 if arch == "amd64" else 6) * 8
    assert syms["tss"][1] == 0x68
    assert syms["tss"][0] % 4096 == 0  # one page per CPU
    assert syms["pit_ticks"][1] == syms["lapic_ticks"][1] == word
    assert syms["isr_stub_table"][1] == 256 * word
    stack, stack_size = syms["boot_stack"]
    assert syms["boot_stack_top"][0] == stack + stack_size
    assert syms["boot_stack_guard"][0] + 4096 == stack  # the guard page right below


# The selectors of the static GDT (the others are the fault-mode slots after it).
_STATIC = ("NULL", "KERNEL_CS", "KERNEL_CS32", "KERNEL_DS", "TSS", "USER_CS", "USER_DS")


@pytest.mark.parametrize("arch", VARIANTS)
def test_static_gdt_descriptors(firmware_built: Path, arch: str) -> None:
    elf, data = load(arch, "good")
    address, size = symbols(elf)["gdt"]
    gdt = struct.unpack(f"<{size // 8}Q", read_vaddr(elf, data, address, size))
    layout = segment_descriptor_layout("ia32e" if arch == "amd64" else "legacy")
    sel = facts(arch).selectors
    assert size == 8 * (max(v for k, v in sel.items() if k in _STATIC) // 8 + 1)

    def at(name: str) -> tuple[int, ...]:
        d = layout.decode(gdt[sel[name] >> 3])
        code = d.type >> 3  # type bit 3: code (1) or data (0)
        return (d.present, d.s, code, d.type & 2, d.dpl, d.l, d.db, d.g, d.base, d.limit)

    # present, code/data, code?, readable/writable, DPL, L, D/B, G, base 0, limit 4 GiB
    long_mode = int(arch == "amd64")
    assert at("KERNEL_CS") == (1, 1, 1, 2, 0, long_mode, 1 - long_mode, 1, 0, 0xFFFFF)
    assert at("KERNEL_DS") == (1, 1, 0, 2, 0, 0, 1, 1, 0, 0xFFFFF)
    assert at("USER_CS") == (1, 1, 1, 2, 3, long_mode, 1 - long_mode, 1, 0, 0xFFFFF)
    assert at("USER_DS") == (1, 1, 0, 2, 3, 0, 1, 1, 0, 0xFFFFF)
    if long_mode:
        assert at("KERNEL_CS32") == (1, 1, 1, 2, 0, 0, 1, 1, 0, 0xFFFFF)
    tss = sel["TSS"] >> 3
    assert gdt[tss : tss + 1 + long_mode] == (0,) * (1 + long_mode)  # filled at run time
    assert gdt[0] == 0


@pytest.mark.parametrize(("arch", "variant"), BUILDS)
def test_each_image_carries_its_variant_config(
    firmware_built: Path, arch: str, variant: str
) -> None:
    elf, data = load(arch, variant)
    word = 8 if arch == "amd64" else 4
    address, _ = symbols(elf)["lhv_config"]
    name_ptr = int.from_bytes(read_vaddr(elf, data, address, word), "little")  # .variant
    name = read_vaddr(elf, data, name_ptr, len(variant) + 1)
    assert name == variant.encode() + b"\0"
