"""Golden plain-text renderings of decoded layouts, GDT/IDT/TSS tables, walks and findings."""

from __future__ import annotations

import io
from collections.abc import Callable

from rich.console import RenderableType

from lhvdbg.ui.console import make_console
from lhvdbg.ui.tables import (
    render_decoded,
    render_findings,
    render_gdt,
    render_idt,
    render_page_walk,
    render_tss,
)
from lhvdbg.x86.checks import check_system
from lhvdbg.x86.paging import pte_layout, walk
from lhvdbg.x86.segments import segment_descriptor_layout
from tests.unit.recorded_snapshots import recorded, recorded_tables

Golden = Callable[[str, str], None]


def _text(*renderables: RenderableType) -> str:
    buf = io.StringIO()
    console = make_console(buf, color=False, width=100)
    for r in renderables:
        console.print(r)
    return buf.getvalue()


def test_gdt_long(golden: Golden) -> None:
    t = recorded_tables("long-tcg")
    assert t.gdt is not None
    text = _text(render_gdt(t.gdt))
    assert "64-bit TSS (busy)" in text and "second-half" in text
    golden("tables/gdt-long.txt", text)


def test_gdt_protected(golden: Golden) -> None:
    t = recorded_tables("protected-i386")
    assert t.gdt is not None
    text = _text(render_gdt(t.gdt))
    golden("tables/gdt-protected.txt", text)
    tr = recorded("protected-i386").cpu.segments["tr"]
    (row,) = [line.split() for line in text.splitlines() if f"{tr.selector:#06x}" in line]
    assert row[2:5] == ["system", f"{tr.base:#x}", f"{tr.limit:#x}"]
    assert "32-bit TSS (busy)" in " ".join(row)
    assert len([line for line in text.splitlines() if line[:1].isdigit()]) == 5  # limit 0x27


def test_idt_selected_vectors(golden: Golden) -> None:
    t = recorded_tables("long-tcg")
    assert t.idt is not None
    text = _text(render_idt(t.idt, vectors=[0, 8, 13, 14, 0x20, 0x22]))
    assert "#DF" in text and "64-bit interrupt gate" in text
    golden("tables/idt-long.txt", text)
    p = recorded_tables("protected-i386")
    assert p.idt is not None
    text = _text(render_idt(p.idt, vectors=range(6, 10)))
    golden("tables/idt-protected.txt", text)
    snap = recorded("protected-i386")
    gate = snap.read(snap.cpu.idtr.base + 8 * 8, 8)  # IDT[8], an 8-byte legacy gate
    offset = int.from_bytes(gate[0:2] + gate[6:8], "little")
    (df,) = [line.split() for line in text.splitlines() if line.startswith("0x08")]
    assert df[1:4] == ["#DF", f"{int.from_bytes(gate[2:4], 'little'):#06x}", f"{offset:#010x}"]
    assert [line.split()[0] for line in text.splitlines()[3:]] == ["0x06", "0x07", "0x08", "0x09"]


def test_tss(golden: Golden) -> None:
    long, prot = recorded_tables("long-tcg"), recorded_tables("protected-i386")
    assert long.tss is not None and prot.tss is not None
    text64 = _text(render_tss(long.tss, base=long.tr.base))
    golden("tables/tss64.txt", text64)
    assert text64.startswith(f"tss64 at {long.tr.base:#x}")
    raw = recorded("long-tcg").read(long.tr.base, 0x68)
    rsp0 = next(line.split() for line in text64.splitlines() if line.startswith("rsp0"))
    assert int(rsp0[2], 16) == int.from_bytes(raw[4:12], "little")  # RSP0 at byte 4
    io_map = next(line.split() for line in text64.splitlines() if line.startswith("io_map"))
    assert int(io_map[2], 16) == int.from_bytes(raw[0x66:0x68], "little")
    text = _text(render_tss(prot.tss, base=prot.tr.base))
    assert "0x00107000" in text  # ESP0
    golden("tables/tss32.txt", text)


def test_decoded_with_changes(golden: Golden) -> None:
    layout = segment_descriptor_layout("protected")
    available = layout.decode(0x0000891009500067)
    busy = available.replace(type=0xB)
    text = _text(render_decoded(busy, previous=available))
    assert "*type" in text and "32-bit TSS (busy)" in text
    golden("tables/descriptor-diff.txt", text)


def test_findings_and_walk(golden: Golden) -> None:
    snap = recorded("long-tr-never-loaded")
    findings = check_system(recorded_tables(snap), snap.cpu, pic=snap.pic)
    text = _text(render_findings(findings))
    golden("tables/findings-tr-never-loaded.txt", text)
    assert snap.cpu.segments["tr"].selector == 0  # the state the finding is about
    assert [f.id for f in findings] == ["tr-never-loaded"]
    assert text.splitlines()[2].split()[:3] == ["warning", "tr-never-loaded", "tr"]
    assert _text(render_findings([])) == "no findings\n"

    mem = {
        0x1000: pte_layout("4level", 4).encode(present=1, rw=1, address=0x2000),
        0x2000: pte_layout("4level", 3).encode(present=1, rw=1, address=0x3000),
        0x3000: pte_layout("4level", 2, ps=True).encode(present=1, rw=1, ps=1, address=0),
    }

    def read(address: int, size: int) -> bytes:
        return mem[address].to_bytes(size, "little")

    w = walk(read, 0x1000, 0x20, 0x500, 0x80000011, 0x123456)
    text = _text(render_page_walk(w))
    golden("tables/page-walk.txt", text)
    # 0x123456 through a 2 MiB page at 0: PML4 index 0, PDPT 0, PD 0, offset 0x123456
    assert [line.split()[0] for line in text.splitlines()[3:6]] == ["PML4E", "PDPTE", "PDE"]
    assert text.splitlines()[5].split()[-1] == "0x0" and "PS" in text.splitlines()[5]
    assert text.splitlines()[-1].startswith("-> physical 0x123456 (0x200000-byte page")
