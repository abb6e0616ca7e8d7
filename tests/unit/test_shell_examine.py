"""``x/FMT ADDR``: format parsing, address expressions, gdb-like rendering; and the ``x``
command itself on a recorded snapshot through the shell's dispatch."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import pytest

from lhvdbg.commands.registry import Context, load_all
from lhvdbg.errors import UsageError
from lhvdbg.state.snapshot import MemoryRegion
from lhvdbg.state.target import SnapshotTarget
from lhvdbg.ui.examine import Format, eval_address, parse_format, render_memory, units
from lhvdbg.ui.shell import Shell
from tests.unit.recorded_snapshots import recorded


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, Format(1, "x", 4)),
        ("/8xb", Format(8, "x", 1)),
        ("/4gx", Format(4, "x", 8)),
        ("/2d", Format(2, "d", 4)),
        ("/s", Format(1, "s", 1)),
        ("/3c", Format(3, "c", 1)),
        ("/2a", Format(2, "a", 8)),
        ("/i", Format(1, "i", 4)),
    ],
)
def test_parse_format(text: str | None, expected: Format) -> None:
    assert parse_format(text) == expected


def test_parse_format_remembers_and_rejects() -> None:
    last = parse_format("/8xb")
    assert parse_format("/4", last) == Format(4, "x", 1)  # gdb keeps format and size
    assert parse_format(None, last) == Format(1, "x", 1)
    assert parse_format("/2a", pointer_size=4) == Format(2, "a", 4)
    assert parse_format("/4xw").text() == "/4xw"
    for bad in ("/8q", "/x8", "/0x", "/99999x"):
        with pytest.raises(UsageError, match="bad format"):
            parse_format(bad)


def test_eval_address() -> None:
    symbols = {"kernel_main": 0x102280, "idt": 0x10F030}
    calls = []

    def regs() -> dict[str, int]:
        calls.append(1)
        return {"rsp": 0x10EFC0, "rip": 0x102285}

    assert eval_address("0x1000", symbols, regs) == 0x1000
    assert eval_address("kernel_main+4", symbols, regs) == 0x102284
    assert eval_address("idt + 0x20", symbols, regs) == 0x10F050
    assert calls == []  # registers are read only when named
    assert eval_address("$rsp+0x10", symbols, regs) == 0x10EFD0
    assert eval_address("$pc - 5", symbols, regs) == 0x102280
    memory = {0x10EFC0: 0x102427, 0x10EFC8: 0x10EFE0, 0x10EFE0: 0x1234}
    deref = memory.__getitem__
    assert eval_address("*$sp", symbols, regs, deref) == 0x102427  # where it points
    assert eval_address("*$sp+8", symbols, regs, deref) == 0x10242F  # gdb: (*$sp)+8
    assert eval_address("*($rsp+8)", symbols, regs, deref) == 0x10EFE0
    assert eval_address("**($rsp + 8) + 8 - 8", symbols, regs, deref) == 0x1234
    with pytest.raises(UsageError, match="cannot dereference"):
        eval_address("*$sp", symbols, regs)
    with pytest.raises(UsageError, match="missing \\)"):
        eval_address("*($sp+8", symbols, regs, deref)
    with pytest.raises(UsageError, match="unknown symbol: nosuch"):
        eval_address("nosuch", symbols, regs)
    with pytest.raises(UsageError, match=r"unknown symbol: x \(the kernel has no symbols\)"):
        eval_address("x", {}, regs)
    with pytest.raises(UsageError, match=r"unknown register \$xmm0"):
        eval_address("$xmm0", symbols, regs)
    with pytest.raises(UsageError, match="cannot evaluate"):
        eval_address("kernel_main kernel_main", symbols, regs)
    with pytest.raises(UsageError, match="negative"):
        eval_address("0x10-0x20", symbols, regs)


def test_render_memory_like_gdb() -> None:
    data = bytes(range(0x10, 0x20))

    def label(address: int) -> str:
        return "buf" if address == 0x1000 else f"buf+{address - 0x1000:#x}"

    assert render_memory(0x1000, data, Format(16, "x", 1), label=label) == (
        "0x1000 <buf>:\t0x10\t0x11\t0x12\t0x13\t0x14\t0x15\t0x16\t0x17\n"
        "0x1008 <buf+0x8>:\t0x18\t0x19\t0x1a\t0x1b\t0x1c\t0x1d\t0x1e\t0x1f\n"
    )
    assert render_memory(0x1000, data[:8], Format(2, "x", 4)) == "0x1000:\t0x13121110\t0x17161514\n"
    assert render_memory(0x0, b"\xff\xff", Format(1, "d", 2)) == "0x0:\t-1\n"
    assert render_memory(0x0, b"\xff\xff", Format(1, "u", 2)) == "0x0:\t65535\n"
    assert render_memory(0x0, b"\x05", Format(1, "t", 1)) == "0x0:\t00000101\n"
    assert render_memory(0x0, b"\x08", Format(1, "o", 1)) == "0x0:\t010\n"
    assert render_memory(0x0, b"A\x01", Format(2, "c", 1)) == "0x0:\t65 'A'\t1 '\\x01'\n"
    assert render_memory(0x0, b"LHV\0junk", Format(1, "s", 1)) == "0x0:\t'LHV'\n"
    pointer = (0x102280).to_bytes(8, "little")
    assert render_memory(0x0, pointer, Format(1, "a", 8), symbolize=lambda a: "kernel_main") == (
        "0x0:\t0x102280 <kernel_main>\n"
    )
    assert units(b"\x01\x00\x02\x00", Format(2, "x", 2)) == [1, 2]


def test_x_command_on_a_snapshot() -> None:
    snapshot = recorded("lhv-good-amd64")
    idt = snapshot.cpu.idtr.base
    snapshot = replace(snapshot, symbols={"idt": idt})
    out, err = io.StringIO(), io.StringIO()
    ctx = Context(stdout=out, color=False, target=SnapshotTarget(snapshot))
    shell = Shell(load_all(), ctx, err=err)
    assert shell.execute("x/2gx idt+0x80") == 0  # IDT[8], 16 bytes
    gate = snapshot.read(idt + 0x80, 16)
    low, high = int.from_bytes(gate[:8], "little"), int.from_bytes(gate[8:], "little")
    assert out.getvalue() == f"{idt + 0x80:#x} <idt+0x80>:\t0x{low:016x}\t0x{high:016x}\n"
    out.truncate(0), out.seek(0)
    assert shell.execute("x/4 idt --json") == 0  # the size and format are remembered
    data = json.loads(out.getvalue())
    assert data["format"] == "/4xg" and data["bytes"] == snapshot.read(idt, 32).hex()
    assert err.getvalue() == ""
    assert shell.execute("x/i 0x10") == 1  # not captured: one line
    assert err.getvalue().startswith("error: memory 0x10..0x")
    assert err.getvalue().endswith(" is not in the snapshot\n")


# pit_init's first instructions (objdump -d -m i386:x86-64 of lhv-good.elf) and the i386
# build's `inc %eax; mov %eax,0x109004` (which 64-bit decoding turns into a movabs).
CODE_64 = bytes.fromhex("31d2b8de341200f7f7")
CODE_32 = bytes.fromhex("40a304901000")


@pytest.mark.parametrize(
    ("name", "code", "expected"),
    [
        ("lhv-good-amd64", CODE_64, ["xorl %edx,%edx", "movl $0x1234de,%eax", "divl %edi"]),
        ("lhv-good-i386", CODE_32, ["incl %eax", "movl %eax,0x109004"]),
    ],
)
def test_x_i_decodes_captured_code_in_the_cpu_mode(
    name: str, code: bytes, expected: list[str]
) -> None:
    snapshot = recorded(name)
    ip = snapshot.cpu.ip
    code_region = MemoryRegion(ip, code + bytes(16), "code")
    snapshot = replace(snapshot, memory=(*snapshot.memory, code_region), symbols={"f": ip - 2})
    out, err = io.StringIO(), io.StringIO()
    ctx = Context(stdout=out, color=False, target=SnapshotTarget(snapshot))
    shell = Shell(load_all(), ctx, err=err)
    assert shell.execute(f"x/{len(expected)}i $pc") == 0, err.getvalue()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(f"=> {ip:#x} <f+0x2>:\t")
    assert [" ".join(line.split("\t")[1].split()) for line in lines] == expected
    out.truncate(0), out.seek(0)
    assert shell.execute("x/1i $pc --json") == 0
    data = json.loads(out.getvalue())
    assert data["bits"] == (64 if name.endswith("amd64") else 32)
    assert (
        bytes.fromhex(data["instructions"][0]["bytes"])
        == code[: len(data["instructions"][0]["bytes"]) // 2]
    )


def test_enter_after_x_goes_on_where_it_stopped() -> None:
    snapshot = recorded("lhv-good-amd64")
    idt = snapshot.cpu.idtr.base
    snapshot = replace(snapshot, symbols={"idt": idt})
    out, err = io.StringIO(), io.StringIO()
    shell = Shell(load_all(), Context(stdout=out, color=False, target=SnapshotTarget(snapshot)))
    shell.err = err
    assert shell.execute_or_repeat("x/2gx idt") == 0
    assert shell.execute_or_repeat("") == 0  # as gdb: the next 16 bytes
    assert shell.execute_or_repeat("") == 0
    starts = [line.split()[0] for line in out.getvalue().splitlines()]
    assert starts == [f"{idt:#x}", f"{idt + 0x10:#x}", f"{idt + 0x20:#x}"], out.getvalue()
    assert err.getvalue() == ""


def test_x_i_bits_forces_a_code_size() -> None:
    snapshot = recorded("lhv-good-amd64")
    ip = snapshot.cpu.ip
    region = MemoryRegion(ip, CODE_32 + bytes(16), "code")
    snapshot = replace(snapshot, memory=(*snapshot.memory, region), symbols={})
    out = io.StringIO()
    shell = Shell(load_all(), Context(stdout=out, color=False, target=SnapshotTarget(snapshot)))
    assert shell.execute("x/2i $pc --bits 32") == 0  # the CPU is in 64-bit mode
    texts = [" ".join(line.split("\t")[1].split()) for line in out.getvalue().splitlines()]
    assert texts == ["incl %eax", "movl %eax,0x109004"]
