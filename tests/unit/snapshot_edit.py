"""Defects injected into a recorded snapshot through the layouts, never by patching bytes.

``with_gate(snap, 0x20, present=0)``, ``with_tss(snap, ist2=0x200008)``,
``with_descriptor(snap, 0x10, dpl=3, l=1, db=0)``: each decodes the structure where the
CPU would find it (IDTR/GDTR base + index, TR base), replaces the named fields
(:meth:`Decoded.replace`, which refuses unknown fields and values that do not fit) and
writes the encoded bytes back into the captured region that holds them. The result is a
new Snapshot; the original is unchanged.
"""

from __future__ import annotations

import dataclasses

from lhvdbg.state.snapshot import MemoryRegion, Snapshot
from lhvdbg.x86.layout import Layout, normalize_mode
from lhvdbg.x86.segments import gate_layout, segment_descriptor_layout, system_descriptor_layout
from lhvdbg.x86.tss import tss_layout


def write(snap: Snapshot, address: int, data: bytes) -> Snapshot:
    """``snap`` with ``data`` at ``address`` inside one captured region (AssertionError
    when no region holds all of it)."""
    regions = []
    done = False
    for region in snap.memory:
        if not done and region.address <= address and address + len(data) <= region.end:
            buf = bytearray(region.data)
            offset = address - region.address
            buf[offset : offset + len(data)] = data
            region = MemoryRegion(region.address, bytes(buf), region.label)
            done = True
        regions.append(region)
    assert done, f"{address:#x}+{len(data)} is not in a captured region"
    return dataclasses.replace(snap, memory=tuple(regions))


def _edit(snap: Snapshot, layout: Layout, address: int, fields: dict[str, int]) -> Snapshot:
    decoded = layout.decode(snap.read(address, layout.size_bytes)).replace(**fields)
    return write(snap, address, decoded.to_bytes())


def with_gate(snap: Snapshot, vector: int, **fields: int) -> Snapshot:
    """IDT[vector] with ``fields`` changed (8- or 16-byte gate by the CPU's mode)."""
    layout = gate_layout(snap.cpu.mode)
    return _edit(snap, layout, snap.cpu.idtr.base + vector * layout.size_bytes, fields)


def with_tss(snap: Snapshot, **fields: int) -> Snapshot:
    """The TSS at TR's base with ``fields`` changed (32- or 64-bit TSS by the mode)."""
    return _edit(snap, tss_layout(snap.cpu.mode), snap.cpu.segments["tr"].base, fields)


def with_descriptor(snap: Snapshot, selector: int, **fields: int) -> Snapshot:
    """The GDT descriptor of ``selector`` with ``fields`` changed: a code/data descriptor
    (8 bytes), or a system one (16 bytes in IA-32e mode) when its S bit is 0."""
    address = snap.cpu.gdtr.base + (selector & ~7)
    mode = snap.cpu.mode
    layout = segment_descriptor_layout(mode)
    current = layout.decode(snap.read(address, 8))
    system = current.s == 0 and current.type != 0 and fields.get("s", 0) == 0
    if system and normalize_mode(mode) == "ia32e":
        layout = system_descriptor_layout(mode)
    return _edit(snap, layout, address, fields)
