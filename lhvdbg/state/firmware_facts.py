"""The LHV firmware's own numbers, read from the firmware instead of typed again.

The firmware declares its GDT selectors, interrupt vectors, I/O ports, exit codes and
fault kinds as C enums (``enum lhv_selector``, ``lhv_vector``, ``lhv_port``,
``lhv_exit_code``, ``lhv_fault_kind`` in ``firmware/include/lhv/abi.h``, ``exit.h`` and
``fault.h``), so every image's DWARF carries them, as Linux's ``scripts/gdb`` reads kernel
constants from the vmlinux it debugs. :func:`firmware_facts` reads them, and the member
offsets of ``struct tss``, in one pass over the DWARF of one image (the top-level DIEs of
each compilation unit only). :func:`firmware_variants` reads the variant list of each
architecture from ``firmware/Makefile`` (``VARIANTS_<arch> := ...``), the one list the
build, the tests, the fixture recorders and the docs follow.

Pure: the only I/O is reading the two files (bounded, :mod:`lhvdbg.files`).
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType

from lhvdbg.errors import KernelError
from lhvdbg.files import SYMBOLS, FileKind, MiB, read_bytes, read_text

__all__ = ["FirmwareFacts", "firmware_facts", "firmware_variants", "parse_variants"]

# enum name -> the prefix its enumerators share (dropped in FirmwareFacts' mappings)
ENUMS: Mapping[str, str] = {
    "lhv_selector": "LHV_SEL_",
    "lhv_vector": "LHV_VEC_",
    "lhv_port": "LHV_PORT_",
    "lhv_exit_code": "LHV_EXIT_",
    "lhv_fault_kind": "LHV_FAULT_",
}
TSS_STRUCT = "tss"
MAKEFILE = FileKind("firmware Makefile", 1 * MiB, KernelError)
_VARIANTS = re.compile(r"^VARIANTS_(\w+)\s*:?=\s*(.*?)\s*$", re.MULTILINE)


def _frozen(values: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType(dict(values))


@dataclass(frozen=True)
class FirmwareFacts:
    """The numbers one firmware image declares. Each mapping is enumerator name without
    its prefix -> value (``selectors["KERNEL_CS"] == 0x08``); ``tss_offsets`` is member
    name -> byte offset in ``struct tss`` (``tss_offsets["rsp0"] == 4`` on amd64)."""

    path: Path
    selectors: Mapping[str, int]
    vectors: Mapping[str, int]
    ports: Mapping[str, int]
    exit_codes: Mapping[str, int]
    fault_kinds: Mapping[str, int]
    tss_offsets: Mapping[str, int]
    tss_size: int

    @property
    def pic_bases(self) -> tuple[int, int]:
        """The vectors the firmware programs the master and slave 8259 to (IRQ0, IRQ8)."""
        return self.vectors["PIT"], self.vectors["PIC_SLAVE_BASE"]

    @property
    def exit_port(self) -> int:
        """The isa-debug-exit port the firmware writes its exit code to."""
        return self.ports["DEBUG_EXIT"]

    def exit_status(self, name: str) -> int:
        """QEMU's exit status when the firmware writes exit code ``name`` (``OK``...):
        isa-debug-exit ends QEMU with ``(value << 1) | 1``."""
        return self.exit_codes[name] << 1 | 1


def _const(value: object) -> int:
    """A DW_AT_const_value as a Python int (pyelftools gives ints, or bytes for blocks)."""
    if isinstance(value, int):
        return value
    if isinstance(value, (bytes, list)):
        return int.from_bytes(bytes(value), "little")
    raise ValueError(f"unexpected DWARF constant {value!r}")


@cache
def firmware_facts(path: Path | str) -> FirmwareFacts:
    """The facts of the firmware image at ``path``; KernelError when it cannot be read,
    has no DWARF, or lacks one of the enums or ``struct tss``."""
    path = Path(path).resolve()
    from elftools.common.exceptions import DWARFError, ELFError
    from elftools.elf.elffile import ELFFile

    enums: dict[str, dict[str, int]] = {}
    tss: dict[str, int] = {}
    tss_size = 0
    try:
        elf = ELFFile(io.BytesIO(read_bytes(path, SYMBOLS)))
        if not elf.has_dwarf_info():
            raise KernelError(f"{path}: no DWARF (build the firmware with -g)", path=str(path))
        for cu in elf.get_dwarf_info().iter_CUs():
            for die in cu.get_top_DIE().iter_children():
                name_attr = die.attributes.get("DW_AT_name")
                name = name_attr.value.decode() if name_attr is not None else ""
                if die.tag == "DW_TAG_enumeration_type" and name in ENUMS and name not in enums:
                    enums[name] = {
                        child.attributes["DW_AT_name"].value.decode(): _const(
                            child.attributes["DW_AT_const_value"].value
                        )
                        for child in die.iter_children()
                        if child.tag == "DW_TAG_enumerator"
                    }
                elif die.tag == "DW_TAG_structure_type" and name == TSS_STRUCT and not tss:
                    size = die.attributes.get("DW_AT_byte_size")
                    tss_size = int(size.value) if size is not None else 0
                    for member in die.iter_children():
                        loc = member.attributes.get("DW_AT_data_member_location")
                        mname = member.attributes.get("DW_AT_name")
                        if member.tag == "DW_TAG_member" and loc is not None and mname:
                            tss[mname.value.decode()] = _const(loc.value)
    except (ELFError, DWARFError, ValueError, KeyError, UnicodeDecodeError) as exc:
        raise KernelError(f"{path}: unreadable DWARF: {exc}", path=str(path)) from exc
    missing = [n for n in ENUMS if n not in enums] + ([] if tss else [f"struct {TSS_STRUCT}"])
    if missing:
        raise KernelError(f"{path}: no {', '.join(missing)} in its DWARF", path=str(path))

    def named(enum: str) -> Mapping[str, int]:
        prefix = ENUMS[enum]
        return _frozen({k.removeprefix(prefix): v for k, v in enums[enum].items()})

    return FirmwareFacts(
        path=path,
        selectors=named("lhv_selector"),
        vectors=named("lhv_vector"),
        ports=named("lhv_port"),
        exit_codes=named("lhv_exit_code"),
        fault_kinds=named("lhv_fault_kind"),
        tss_offsets=_frozen(tss),
        tss_size=tss_size,
    )


def parse_variants(makefile: str) -> dict[str, tuple[str, ...]]:
    """Arch -> its variants, in the Makefile's order, from ``VARIANTS_<arch> := a b c``."""
    return {m.group(1): tuple(m.group(2).split()) for m in _VARIANTS.finditer(makefile)}


def firmware_variants(makefile: Path | str) -> dict[str, tuple[str, ...]]:
    """Arch -> its variants, read from the firmware's Makefile; KernelError when it names
    none."""
    variants = parse_variants(read_text(makefile, MAKEFILE))
    if not variants:
        raise KernelError(f"{makefile}: no VARIANTS_<arch> line", path=str(makefile))
    return variants
