"""``LiveTarget.capture`` offline: it depends on a small port, not on a Session, so a
stand-in serves the recorded QEMU (HMP) texts and memory of tests/fixtures/snapshots, answers
gdb's read commands as gdb would (``$sp``/``$pc`` expressions included, each reply naming
the address it read) and logs every request. A capture sends its HMP requests and its gdb
reads together, the reads where the last capture found the tables; it reads again only
what moved, and nothing at all while the machine cannot have changed."""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

import pytest

from lhvdbg.machine.gdbmi import MiResult, PendingBatch
from lhvdbg.machine.launch import LaunchConfig
from lhvdbg.machine.live import LiveTarget
from lhvdbg.state.snapshot import Snapshot, load_snapshot
from lhvdbg.x86.hmp import parse_info_registers

SNAPSHOTS = Path(__file__).resolve().parent.parent / "fixtures" / "snapshots"
READ = re.compile(r"-data-read-memory-bytes (\S+) (\d+)\Z")
EXPRESSION = re.compile(r"\$(sp|pc)([+-]0x[0-9a-f]+)\Z")


class FakeMonitor:
    def __init__(self, port: Port) -> None:
        self.port = port

    def send(self, lines: list[str]) -> list[str]:
        self.port.log.append(("hmp-send", tuple(lines)))
        return lines

    def collect(self, pending: list[str]) -> list[str]:
        self.port.log.append(("hmp-collect", tuple(pending)))
        return [self.port.hmp_texts[c] for c in pending]


class FakeGdb:
    """gdb's ``-data-read-memory-bytes`` over the port's memory; anything else fails."""

    def __init__(self, port: Port) -> None:
        self.port = port
        self.token = 0
        self.expressions_fail = False  # as gdb answers an expression it cannot read

    def send(self, commands: list[str]) -> PendingBatch:
        self.port.log.append(("gdb-send", tuple(commands)))
        tokens = tuple(range(self.token, self.token + len(commands)))
        self.token += len(commands)
        return PendingBatch(tuple(commands), tokens)

    def finish(self, pending: PendingBatch, *, check: bool = True) -> list[MiResult]:
        assert not check
        self.port.log.append(("gdb-finish", pending.commands))
        return [self.answer(c, t) for c, t in zip(pending.commands, pending.tokens, strict=True)]

    def batch(self, commands: list[str], *, check: bool = True) -> list[MiResult]:
        return self.finish(self.send(commands), check=check)

    def answer(self, command: str, token: int) -> MiResult:
        m = READ.match(command)
        assert m is not None, command
        where, size = m.group(1), int(m.group(2))
        e = EXPRESSION.match(where)
        if e is not None and self.expressions_fail:
            return MiResult(command, token, "error", {"msg": "Unable to read memory."})
        if e is not None:
            cpu = parse_info_registers(self.port.hmp_texts["info registers"])
            address = (cpu.sp if e.group(1) == "sp" else cpu.ip) + int(e.group(2), 16)
        else:
            address = int(where, 16)
        block = {
            "begin": f"{address:#018x}",
            "offset": "0x0000000000000000",
            "end": f"{address + size:#018x}",
            "contents": self.port.read_memory(address, size).hex(),
        }
        return MiResult(command, token, "done", {"memory": [block]})


class Port:
    """The ReadPort of a machine stopped where ``recorded`` was captured: its HMP texts,
    its memory regions (zeros elsewhere); ``version`` is its machine version."""

    def __init__(self, recorded: Snapshot) -> None:
        self.recorded = recorded
        self.hmp_texts = dict(recorded.hmp)
        self.memory = {r.address: bytearray(r.data) for r in recorded.memory}
        self.log: list[tuple[str, Any]] = []
        self.monitor = FakeMonitor(self)
        self.gdb = FakeGdb(self)
        self.version = 0
        self.arch = recorded.arch
        self.accel = "tcg"
        self.qemu_version = "7.2.22"
        self.kernel = None
        self.kernel_info = None
        self.config = LaunchConfig()
        self.notes: list[str] = []
        self.last_stop = None

    def machine_version(self) -> int:
        return self.version

    def byte(self, address: int) -> int:
        for base, data in self.memory.items():
            if base <= address < base + len(data):
                return data[address - base]
        return 0

    def hmp(self, command: str) -> str:
        self.log.append(("hmp", command))
        return self.hmp_texts[command]

    def read_memory(self, address: int, size: int) -> bytes:
        return bytes(self.byte(a) for a in range(address, address + size))

    def symbolize(self, address: int) -> str:
        return f"{address:#x}"

    def batches(self) -> list[tuple[str, ...]]:
        return [entry[1] for entry in self.log if entry[0] == "gdb-send"]


def reads(*regions: tuple[int | str, int]) -> tuple[str, ...]:
    return tuple(
        f"-data-read-memory-bytes {a if isinstance(a, str) else hex(a)} {n}" for a, n in regions
    )


def labelled(snap: Snapshot) -> list[tuple[str, int, bytes]]:
    return [(r.label, r.address, r.data) for r in snap.memory]


@pytest.fixture
def recorded() -> Snapshot:
    return load_snapshot(SNAPSHOTS / "lhv-good-amd64.json")


def test_capture_sends_hmp_and_gdb_together_then_reads_what_it_could_not_guess(
    recorded: Snapshot,
) -> None:
    port = Port(recorded)
    cpu = recorded.cpu
    tss = recorded.region("tss")
    assert tss is not None and tss.address == cpu.tr.base
    rsp0 = struct.unpack_from("<Q", tss.data, 4)[0]

    first = LiveTarget(port).capture()
    # nothing known yet: gdb reads around $sp and $pc while QEMU's monitor answers the three texts;
    # then the tables at the registers' addresses, then the stack tops the TSS names
    assert [k for k, _ in port.log] == [
        "gdb-send", "hmp-send", "gdb-finish", "hmp-collect", "gdb-send", "gdb-finish",
        "gdb-send", "gdb-finish",
    ]  # fmt: skip
    guessed, tables, pages = port.batches()
    assert guessed == reads(("$sp-0x100", 0x300), ("$pc-0x20", 0x60))
    assert port.log[1] == ("hmp-send", ("info registers", "info pic", "info lapic"))
    assert tables == reads(
        (cpu.gdtr.base, cpu.gdtr.limit + 1),
        (cpu.idtr.base, cpu.idtr.limit + 1),
        (cpu.tr.base, cpu.tr.limit + 1),
    )  # the stack and code windows were read where the registers say: not again
    assert reads((rsp0 - 0x200, 0x200))[0] in pages  # the 512 bytes below RSP0
    assert labelled(first)[:3] == labelled(recorded)  # the fixture holds the tables only
    assert [r.label for r in first.memory[3:]] == ["stack", "code", "rsp0", "ist1"]
    stack = first.region("stack")
    assert stack is not None and stack.address == cpu.sp - 0x100 and len(stack.data) == 0x300
    assert first.hmp == dict(recorded.hmp) and first.pic == recorded.pic
    assert first.lapic == recorded.lapic and first.cpu == recorded.cpu


def test_nothing_is_read_again_while_the_machine_version_stands(recorded: Snapshot) -> None:
    port = Port(recorded)
    target = LiveTarget(port)
    first = target.capture(note="one")
    port.log.clear()
    second = target.capture(note="two")
    assert target.cpu() == recorded.cpu and target.pic() == recorded.pic
    assert port.log == []  # no request at all
    assert labelled(second) == labelled(first) and second.hmp == first.hmp
    assert second.provenance.note == "two"  # the provenance is new each time

    port.version += 1  # e.g. one step: everything is read again, in one round trip
    port.memory[recorded.cpu.idtr.base][0] ^= 0xFF  # the step wrote the IDT
    third = target.capture()
    assert [k for k, _ in port.log] == ["gdb-send", "hmp-send", "gdb-finish", "hmp-collect"]
    assert len(port.batches()[0]) == 7  # 5 regions + RSP0 and IST1 stack tops
    idt = third.region("idt")
    assert idt is not None and idt.data[0] == recorded.region("idt").data[0] ^ 0xFF  # type: ignore[union-attr]


def test_texts_read_one_by_one_are_kept_too(recorded: Snapshot) -> None:
    port = Port(recorded)
    target = LiveTarget(port)
    assert target.lapic() == recorded.lapic
    assert target.lapic() == recorded.lapic
    assert port.log == [("hmp", "info lapic")]
    target.capture()
    assert ("hmp-send", ("info registers", "info pic")) in port.log  # not the LAPIC again


def test_moved_tables_and_stack_tops_cost_one_more_round_trip_each(
    recorded: Snapshot,
) -> None:
    port = Port(recorded)
    target = LiveTarget(port)
    target.capture()
    cpu = recorded.cpu
    tss = recorded.region("tss")
    assert tss is not None
    rsp0 = struct.unpack_from("<Q", tss.data, 4)[0]

    # the kernel points RSP0 elsewhere: only its new top is read in a second round trip
    moved = rsp0 + 0x8000  # (+0x4000 would be IST1's top: read anyway, not again)
    port.memory[tss.address][4:12] = struct.pack("<Q", moved)
    port.version += 1
    port.log.clear()
    third = target.capture()
    batches = port.batches()
    assert len(batches) == 2 and batches[1] == reads((moved - 0x200, 0x200))
    rsp0_region = third.region("rsp0")
    assert rsp0_region is not None and rsp0_region.address == moved - 0x200
    assert rsp0_region.end == moved  # the bytes a delivery on that stack would push into

    # a new IDT (lidt): read at its new place in a second round trip, nothing else
    new_base = cpu.idtr.base + 0x20000
    text = port.hmp_texts["info registers"]
    port.hmp_texts["info registers"] = text.replace(
        f"IDT=     {cpu.idtr.base:016x}", f"IDT=     {new_base:016x}"
    )
    port.memory[new_base] = bytearray(b"\x5a" * (cpu.idtr.limit + 1))
    port.version += 1
    port.log.clear()
    fourth = target.capture()
    assert port.batches()[1:] == [reads((new_base, cpu.idtr.limit + 1))]
    idt = fourth.region("idt")
    assert idt is not None and idt.address == new_base and set(idt.data) == {0x5A}


def test_a_guess_gdb_could_not_read_is_read_again_where_the_registers_say(
    recorded: Snapshot,
) -> None:
    port = Port(recorded)
    port.gdb.expressions_fail = True  # no address in the reply: the guess is unusable
    snap = LiveTarget(port).capture()
    cpu = recorded.cpu
    assert port.batches()[1] == reads(
        (cpu.gdtr.base, cpu.gdtr.limit + 1),
        (cpu.idtr.base, cpu.idtr.limit + 1),
        (cpu.tr.base, cpu.tr.limit + 1),
        (cpu.sp - 0x100, 0x300),
        (cpu.ip - 0x20, 0x60),
    )
    stack, code = snap.region("stack"), snap.region("code")
    assert stack is not None and stack.address == cpu.sp - 0x100 and len(stack.data) == 0x300
    assert code is not None and code.data == port.read_memory(cpu.ip - 0x20, 0x60)
