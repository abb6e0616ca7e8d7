"""Where the loader jumps (lhvdbg.commands._boot.entry_point)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from lhvdbg.commands._boot import entry_point
from lhvdbg.state.elf import KernelInfo, MultibootHeader, Segment


@dataclass
class _Session:
    kernel_info: KernelInfo | None
    extra: dict[str, Any] = field(default_factory=dict)


def _info(entry: int, vaddr: int, paddr: int, header: MultibootHeader | None = None) -> KernelInfo:
    seg = Segment(vaddr, paddr, 0x1000, 0x2000, 0x3000, 5)
    return KernelInfo(Path("k.elf"), 32, "EM_386", entry, header, (seg,))


def test_identity_mapped_entry_is_e_entry() -> None:
    session = _Session(_info(0x10000C, 0x100000, 0x100000))
    assert entry_point(cast(Any, session)) == 0x10000C


def test_a_higher_half_entry_becomes_physical() -> None:
    session = _Session(_info(0xC010000C, 0xC0100000, 0x100000))
    assert entry_point(cast(Any, session)) == 0x10000C


def test_the_a_out_kludge_entry_wins() -> None:
    header = MultibootHeader(0, 1 << 16, 0, 0x100000, 0x100000, 0, 0, 0x100020)
    session = _Session(_info(0x10000C, 0x100000, 0x100000, header))
    assert entry_point(cast(Any, session)) == 0x100020
    assert entry_point(cast(Any, _Session(None))) is None
