"""The shell as a gdb user lives in it, driven through a pseudo-terminal on the real
firmware: the context after ``stepi`` decodes in the CPU's mode (checked against
``objdump -d`` of the ELF with the matching ``-m``), Enter repeats ``stepi``, Tab after
``br`` leaves a space, ``x/2gx *ADDR`` dereferences, and gdb habits (``finish``, ``bt``,
``p``) answer.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pexpect
import pytest

from tests.conftest import firmware_elf
from tests.integration.test_shell import Terminal

pytestmark = pytest.mark.integration

_ROW = re.compile(r"^\s*([0-9a-f]+):\t([0-9a-f ]+)\t(.*)$")
_CODE_LINE = re.compile(r"^(=>|  ) (0x[0-9a-f]+)(?: <[^>]+>)?:\t(.*)$")


def objdump(elf: Path, machine: str, start: int, stop: int) -> dict[int, str]:
    """``address -> instruction text`` from ``objdump -d -m MACHINE``."""
    out = subprocess.run(
        ["objdump", "-d", "-m", machine, f"--start-address={start:#x}",
         f"--stop-address={stop:#x}", str(elf)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rows = {}
    for line in out.splitlines():
        match = _ROW.match(line)
        if match:
            rows[int(match.group(1), 16)] = " ".join(match.group(3).split())
    return rows


def _normal(text: str) -> tuple[str, str]:
    """(mnemonic, operands) without symbols, comments, spaces and ``0x`` (objdump prints
    branch targets bare)."""
    text = re.sub(r"<[^>]*>|#.*$", "", text).strip()
    mnemonic, _, operands = text.partition(" ")
    return mnemonic, operands.replace(" ", "").replace("0x", "")


def same_instruction(ours: str, theirs: str) -> bool:
    """Capstone's AT&T text and objdump's name one instruction (Capstone always writes
    the size suffix: ``movl`` where objdump writes ``mov``)."""
    (om, oo), (tm, to) = _normal(ours), _normal(theirs)
    suffix = om == tm or (om[:-1] == tm and om[-1] in "bwlq")
    return suffix and oo == to


def code_lines(out: str) -> list[tuple[bool, int, str]]:
    """(is the PC, address, text) of each line of a context's code section."""
    lines = []
    for line in out.splitlines():
        match = _CODE_LINE.match(line)
        if match:
            lines.append((match.group(1) == "=>", int(match.group(2), 16), match.group(3)))
    return lines


def check_against_objdump(out: str, elf: Path, machine: str, pc: int, stop: int) -> None:
    lines = code_lines(out)
    assert lines and lines[0][:2] == (True, pc), out
    reference = objdump(elf, machine, pc, stop + 16)  # whole instructions up to stop
    compared = [(a, t) for _, a, t in lines if a < stop]
    assert len(compared) >= 2, out
    for address, text in compared:
        assert address in reference, (hex(address), out)
        assert same_instruction(text, reference[address]), (hex(address), text, reference[address])


def _pc_of(out: str) -> int:
    match = re.search(r"step: at \S+ \((0x[0-9a-f]+)\)", out)
    assert match is not None, out
    return int(match.group(1), 16)


def test_amd64_context_decodes_64_bit_and_compatibility_code(
    firmware_built: Path, tmp_path: Path
) -> None:
    elf = firmware_elf("amd64", "good")
    term = Terminal(["--variant", "good"], tmp_path / "state")
    try:
        term.prompt()
        # Tab after `br` completes the command and leaves a space before the argument
        term.child.send("br\t")
        term.child.expect(r"eak(\x1b\[C| )")  # "eak" and the space (drawn as a cursor move)
        term.child.send("pit_init")
        out = term.run("")
        assert re.search(r"^breakpoint 1 at pit_init \(0x[0-9a-f]+\)$", out, re.M), out
        # the 32-bit entry code, before and after paging turns long mode on
        assert "error" not in term.run("break *0x1000a0")
        out = term.run("break 0x1000a0")
        assert re.search(r"error: breakpoint 2 is already at \S+ \(0x1000a0\)", out), out

        out = term.run("continue")
        assert "breakpoint 2 hit" in out and "protected mode, 32-bit code" in out, out
        out = term.run("stepi")
        assert _pc_of(out) == 0x1000A3
        check_against_objdump(out, elf, "i386", 0x1000A3, 0x1000B9)
        # Enter on an empty line repeats stepi: mov %eax,%cr0 sets PG, EFER.LMA follows
        assert _pc_of(term.run("")) == 0x1000A8
        out = term.run("")
        assert _pc_of(out) == 0x1000AB and "compat mode, 32-bit code" in out, out
        # lgdtl and the far jump, not `lgdt ...(%rip)` and `(bad)` as 64-bit decoding reads
        check_against_objdump(out, elf, "i386", 0x1000AB, 0x1000B9)
        assert code_lines(out)[0][2].startswith("lgdtl"), out
        assert code_lines(out)[1][2] == "ljmpl  $0x8,$0x1000b9 <long_mode_entry>", out

        out = term.run("continue")
        assert "breakpoint 1 hit at pit_init" in out and "long mode, 64-bit code" in out, out
        out = term.run("stepi")
        pc = _pc_of(out)
        check_against_objdump(out, elf, "i386:x86-64", pc, pc + 0x18)
        out = term.run("")
        assert _pc_of(out) > pc
        check_against_objdump(out, elf, "i386:x86-64", _pc_of(out), _pc_of(out) + 0x18)

        # x/2gx *ADDR reads where ADDR points; p shows the pointer
        out = term.run("p $rsp")
        rsp = int(out.split()[0], 16)
        ret = int(term.run(f"x/1gx {rsp:#x}").split("\t")[1], 16)
        out = term.run(f"x/2gx *{rsp:#x}")
        assert out.startswith(f"{ret:#x} <kernel_main+0x"), out
        out = term.run("x/2gx *$rsp")
        assert out.startswith(f"{ret:#x} <kernel_main+0x"), out

        out = term.run("bt")
        assert re.search(r"^#0\s+0x[0-9a-f]+ in pit_init\+0x[0-9a-f]+$", out, re.M), out
        assert re.search(rf"^#1\s+{ret:#x} in kernel_main\+0x[0-9a-f]+$", out, re.M), out
        out = term.run("finish")
        assert re.search(rf"step: at kernel_main\+0x[0-9a-f]+ \({ret:#x}\)", out), out
        term.child.send("quit\r")
        term.child.expect(pexpect.EOF)
    finally:
        term.close()


def test_i386_context_decodes_32_bit_code(firmware_built: Path, tmp_path: Path) -> None:
    elf = firmware_elf("i386", "good")
    term = Terminal(["--variant", "good", "--arch", "i386"], tmp_path / "state")
    try:
        term.prompt()
        assert "breakpoint 1 at pit_init" in term.run("break pit_init")
        out = term.run("continue")
        assert "protected mode, 32-bit code" in out, out
        assert re.search(r"^ ?\*?eip\s+0x[0-9a-f]{8}", out, re.M), out  # i386 names
        out = term.run("stepi")
        pc = _pc_of(out)
        check_against_objdump(out, elf, "i386", pc, pc + 0x14)
        assert re.search(r"^\*eip\s+0x[0-9a-f]{8}", out, re.M), out  # changed: marked
        out = term.run("")
        assert _pc_of(out) > pc
        check_against_objdump(out, elf, "i386", _pc_of(out), _pc_of(out) + 0x14)
        out = term.run("set context off")
        assert term.run("stepi").strip().startswith("step: at pit_init+0x")
        assert "──" not in term.run("stepi")
        term.child.send("quit\r")
        term.child.expect(pexpect.EOF)
    finally:
        term.close()
