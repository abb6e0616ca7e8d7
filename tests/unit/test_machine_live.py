"""``LiveTarget.capture`` offline: it depends on a small port, not on a Session, so a
stand-in serves the recorded QEMU texts and memory of tests/fixtures/snapshots and counts
the round trips. A second capture reads the stack pages the TSS named with the tables;
when the TSS names another page, only that page costs one more round trip."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from lhvdbg.machine.launch import LaunchConfig
from lhvdbg.machine.live import LiveTarget
from lhvdbg.state.snapshot import Snapshot, load_snapshot

SNAPSHOTS = Path(__file__).resolve().parent.parent / "fixtures" / "snapshots"


class FakeQmp:
    def __init__(self, port: Port) -> None:
        self.port = port

    def send_hmp(self, lines: list[str]) -> list[str]:
        self.port.log.append(("qmp-send", tuple(lines)))
        return lines

    def collect(self, pending: list[str]) -> list[str]:
        self.port.log.append(("qmp-collect", tuple(pending)))
        return [self.port.recorded.hmp[c] for c in pending]


class Port:
    """The ReadPort of a machine stopped where ``recorded`` was captured: its HMP texts,
    its memory regions (zeros elsewhere), one gdb batch per read call."""

    def __init__(self, recorded: Snapshot) -> None:
        self.recorded = recorded
        self.memory = {r.address: bytearray(r.data) for r in recorded.memory}
        self.log: list[tuple[str, Any]] = []
        self.qmp = FakeQmp(self)
        self.arch = recorded.arch
        self.accel = "tcg"
        self.qemu_version = "7.2.22"
        self.kernel = None
        self.kernel_info = None
        self.config = LaunchConfig()
        self.notes: list[str] = []
        self.last_stop = None

    def byte(self, address: int) -> int:
        for base, data in self.memory.items():
            if base <= address < base + len(data):
                return data[address - base]
        return 0

    def hmp(self, command: str) -> str:
        self.log.append(("hmp", command))
        return self.recorded.hmp[command]

    def read_memory(self, address: int, size: int) -> bytes:
        return bytes(self.byte(a) for a in range(address, address + size))

    def read_memory_readable(self, regions: list[tuple[int, int]]) -> list[list[tuple[int, bytes]]]:
        self.log.append(("gdb", tuple(regions)))
        return [[(a, self.read_memory(a, n))] for a, n in regions]

    def symbolize(self, address: int) -> str:
        return f"{address:#x}"

    def batches(self) -> list[tuple[tuple[int, int], ...]]:
        return [entry[1] for entry in self.log if entry[0] == "gdb"]


def labelled(snap: Snapshot) -> list[tuple[str, int, bytes]]:
    return [(r.label, r.address, r.data) for r in snap.memory]


def test_capture_reads_the_tables_then_the_stack_pages_then_guesses_them() -> None:
    recorded = load_snapshot(SNAPSHOTS / "lhv-good-amd64.json")
    port = Port(recorded)
    target = LiveTarget(port)
    cpu = recorded.cpu
    tss = recorded.region("tss")
    assert tss is not None and tss.address == cpu.tr.base
    rsp0 = struct.unpack_from("<Q", tss.data, 4)[0]
    rsp0_page = (rsp0 - 1) & ~0xFFF

    first = target.capture()
    # QMP's PIC/LAPIC texts go out before gdb's reads and are collected after them
    kinds = [k for k, _ in port.log]
    assert kinds == ["hmp", "qmp-send", "gdb", "qmp-collect", "gdb"]
    tables, pages = port.batches()
    assert tables[:3] == (
        (cpu.gdtr.base, cpu.gdtr.limit + 1),
        (cpu.idtr.base, cpu.idtr.limit + 1),
        (cpu.tr.base, cpu.tr.limit + 1),
    )
    assert (rsp0_page, 0x1000) in pages
    assert first.region("idt") is not None
    assert first.region("idt").data == recorded.region("idt").data  # type: ignore[union-attr]
    assert first.region("rsp0") is not None and first.region("rsp0").address == rsp0_page  # type: ignore[union-attr]
    assert first.hmp == dict(recorded.hmp) and first.pic == recorded.pic

    port.log.clear()
    second = target.capture()
    assert len(port.batches()) == 1  # the pages came with the tables
    assert set(pages) <= set(port.batches()[0])
    assert labelled(second) == labelled(first)

    # the kernel points RSP0 elsewhere: only the new page is read in a third round trip
    moved = rsp0 + 0x4000
    port.memory[tss.address][4:12] = struct.pack("<Q", moved)
    port.log.clear()
    third = target.capture()
    batches = port.batches()
    assert len(batches) == 2 and batches[1] == (((moved - 1) & ~0xFFF, 0x1000),)
    rsp0_region = third.region("rsp0")
    assert rsp0_region is not None and rsp0_region.address == (moved - 1) & ~0xFFF
    assert rsp0_page not in {r.address for r in third.memory if r.label == "rsp0"}
