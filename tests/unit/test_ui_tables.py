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
    golden("tables/gdt-protected.txt", _text(render_gdt(t.gdt)))


def test_idt_selected_vectors(golden: Golden) -> None:
    t = recorded_tables("long-tcg")
    assert t.idt is not None
    text = _text(render_idt(t.idt, vectors=[0, 8, 13, 14, 0x20, 0x22]))
    assert "#DF" in text and "64-bit interrupt gate" in text
    golden("tables/idt-long.txt", text)
    p = recorded_tables("protected-i386")
    assert p.idt is not None
    golden("tables/idt-protected.txt", _text(render_idt(p.idt, vectors=range(6, 10))))


def test_tss(golden: Golden) -> None:
    long, prot = recorded_tables("long-tcg"), recorded_tables("protected-i386")
    assert long.tss is not None and prot.tss is not None
    golden("tables/tss64.txt", _text(render_tss(long.tss, base=long.tr.base)))
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
    golden("tables/findings-tr-never-loaded.txt", _text(render_findings(findings)))
    assert _text(render_findings([])) == "no findings\n"

    mem = {
        0x1000: pte_layout("4level", 4).encode(present=1, rw=1, address=0x2000),
        0x2000: pte_layout("4level", 3).encode(present=1, rw=1, address=0x3000),
        0x3000: pte_layout("4level", 2, ps=True).encode(present=1, rw=1, ps=1, address=0),
    }

    def read(address: int, size: int) -> bytes:
        return mem[address].to_bytes(size, "little")

    w = walk(read, 0x1000, 0x20, 0x500, 0x80000011, 0x123456)
    golden("tables/page-walk.txt", _text(render_page_walk(w)))
