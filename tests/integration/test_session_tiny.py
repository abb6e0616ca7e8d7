"""The session against a tiny multiboot kernel assembled here (not the LHV firmware).

It shows the session works for any multiboot kernel, and gives controlled cases: a guest
that never ends (timeouts, interrupts), and a kernel that loads IDTR *before* it fills
the timer gate (run_to_vector must re-arm from the gate write watchpoint).
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from lhvdbg.errors import StateError
from lhvdbg.machine.runstate import Runstate
from lhvdbg.machine.session import LaunchConfig, Session
from lhvdbg.state.elf import find_lidt, inspect_kernel

pytestmark = pytest.mark.integration

TINY_S = r"""
/* tiny multiboot kernel: serial hello, IDT, PIC remap, PIT at 1 kHz, N ticks, exit */
#ifndef TICKS
#define TICKS 5
#endif
#ifndef PIC_BASE
#define PIC_BASE 0x20
#endif
        .section .text
        .globl _start
        .align 4
mb_header:
        .long 0x1BADB002
        .long 0
        .long -0x1BADB002
_start:
        mov $stack_top, %esp
        mov $msg, %esi
1:      lodsb
        test %al, %al
        jz 2f
        mov $0x3f8, %dx
        out %al, %dx
        jmp 1b
2:
#ifdef LIDT_FIRST
        lidt idtr
#endif
        /* gate for the timer: IDT[PIC_BASE] -> timer_handler, selector = %cs */
        mov $timer_handler, %eax
        mov $(idt + PIC_BASE*8), %edi
        movw %ax, (%edi)
        movw %cs, %bx
        movw %bx, 2(%edi)
        movw $0x8e00, 4(%edi)
        shr $16, %eax
        movw %ax, 6(%edi)
#ifndef LIDT_FIRST
        lidt idtr
#endif
        .globl after_lidt
after_lidt:
        /* 8259A: ICW1..ICW4, master base PIC_BASE, slave base PIC_BASE+8 */
        mov $0x11, %al
        out %al, $0x20
        out %al, $0xa0
        mov $PIC_BASE, %al
        out %al, $0x21
        mov $(PIC_BASE+8), %al
        out %al, $0xa1
        mov $4, %al
        out %al, $0x21
        mov $2, %al
        out %al, $0xa1
        mov $1, %al
        out %al, $0x21
        out %al, $0xa1
        mov $0xfe, %al          /* only IRQ0 */
        out %al, $0x21
        mov $0xff, %al
        out %al, $0xa1
        /* PIT channel 0, mode 2, 1193 -> ~1 kHz */
        mov $0x34, %al
        out %al, $0x43
        mov $(1193 & 0xff), %al
        out %al, $0x40
        mov $(1193 >> 8), %al
        out %al, $0x40
        sti
3:      hlt
        cmpl $TICKS, ticks
        jb 3b
        cli
        .globl kernel_done
kernel_done:
        mov $0x10, %al           /* QEMU exits with (0x10 << 1) | 1 = 33 */
        out %al, $0xf4
4:      hlt
        jmp 4b

        .globl timer_handler
timer_handler:
        incl ticks
        push %eax
        mov $0x20, %al
        out %al, $0x20
        pop %eax
        iret

        .section .data
        .align 8
        .globl idt
idt:    .fill 256, 8, 0
idtr:   .word 256*8-1
        .long idt
        .globl ticks
ticks:  .long 0
msg:    .asciz "tiny: hello\n"
        .section .bss
        .align 16
        .space 4096
stack_top:
        .section .note.GNU-stack,"",@progbits
"""


def build_tiny(directory: Path, name: str = "tiny", **defines: int) -> Path:
    """Assemble and link the tiny kernel (ELF32, multiboot, one RWX PT_LOAD at 1 MiB)."""
    directory.mkdir(parents=True, exist_ok=True)
    source = directory / f"{name}.S"
    source.write_text(TINY_S)
    obj, elf = directory / f"{name}.o", directory / f"{name}.elf"
    flags = [f"-D{k}={v}" for k, v in defines.items()]
    subprocess.run(["gcc", "-m32", *flags, "-c", str(source), "-o", str(obj)], check=True)
    subprocess.run(
        ["ld", "-m", "elf_i386", "-N", "-Ttext=0x100000", "--build-id=none",
         "--no-warn-rwx-segments", "-o", str(elf), str(obj)],
        check=True,
    )  # fmt: skip
    return elf


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("tiny"))


def test_any_multiboot_kernel_boots_and_exits(tiny: Path) -> None:
    with Session(LaunchConfig(kernel=tiny)) as s:
        assert s.arch == "i386" and s.kernel_info is not None
        ev = s.cont(timeout=10)
        assert ev.reason == "exited" and ev.guest_exit_value == 0x10 and ev.exit_code == 0x21
        assert s.serial_text() == "tiny: hello\n"
        assert not s.alive


def test_timeout_interrupts_and_the_guest_goes_on(tmp_path: Path) -> None:
    forever = build_tiny(tmp_path, "forever", TICKS=0x7FFFFFFF)
    with Session(LaunchConfig(kernel=forever)) as s:
        assert s.wait_for_serial("tiny: hello", timeout=0) is False  # not started yet
        ev = s.cont(timeout=0.3)
        assert ev.reason == "timeout" and ev.address is not None
        assert ev.elapsed >= 0.3  # it waited the whole timeout (no upper bound: no timing asserts)
        assert s.runstate is Runstate.STOPPED
        for _ in range(50):  # a loaded machine may still be in the BIOS after 0.3 s
            if "tiny: hello" in s.serial_text():
                break
            assert s.cont(timeout=0.3).reason == "timeout"
        assert s.wait_for_serial("tiny: hello", timeout=0)
        ticks_addr = s.resolve("ticks")
        before = struct.unpack("<I", s.read_memory(ticks_addr, 4))[0]
        assert before > 0
        assert s.cont(timeout=0.2).reason == "timeout"
        after = struct.unpack("<I", s.read_memory(ticks_addr, 4))[0]
        assert after > before  # it really ran again
        assert s.interrupt().reason == "interrupted"  # already stopped: where it is
        # a poll callback that raises leaves the guest running: reads are refused until
        # interrupt() stops it
        with pytest.raises(_Seen):
            s.cont(timeout=10, poll=_seen)
        assert s.runstate is Runstate.RUNNING
        with pytest.raises(StateError, match="read memory: the session is running"):
            s.read_memory(ticks_addr, 4)
        ev = s.interrupt()
        assert ev.reason == "interrupted" and ev.signal == "SIGINT"
        assert s.runstate is Runstate.STOPPED
        assert struct.unpack("<I", s.read_memory(ticks_addr, 4))[0] >= after


class _Seen(Exception):
    pass


def _seen() -> None:
    raise _Seen


def test_run_to_vector_rearms_when_the_gate_is_written_after_lidt(tmp_path: Path) -> None:
    late = build_tiny(tmp_path, "late", LIDT_FIRST=1)
    info = inspect_kernel(late)
    assert find_lidt(info) and info.symbols["after_lidt"] > find_lidt(info)[0]
    with Session(LaunchConfig(kernel=late)) as s:
        ev = s.run_to_vector(0x20, count=2, timeout=10)
        assert ev.reason == "vector" and ev.address == info.symbols["timer_handler"]
        assert struct.unpack("<I", s.read_memory(s.resolve("ticks"), 4))[0] == 1
        # and the run goes on to the end normally afterwards
        assert s.cont(timeout=10).guest_exit_value == 0x10


def test_run_to_timer_uses_the_pic_base_set_after_lidt(tmp_path: Path) -> None:
    odd = build_tiny(tmp_path, "odd", PIC_BASE=0x50)
    with Session(LaunchConfig(kernel=odd)) as s:
        ev = s.run_to_timer(count=3, timeout=10)
        assert ev.reason == "vector" and ev.vector == 0x50
        assert ev.address == s.resolve("timer_handler")
        assert struct.unpack("<I", s.read_memory(s.resolve("ticks"), 4))[0] == 2


def test_run_to_vector_reports_a_vector_that_never_fires(tiny: Path) -> None:
    with Session(LaunchConfig(kernel=tiny)) as s:
        ev = s.run_to_vector(0x30, timeout=5)
        assert ev.reason == "exited"  # the kernel ended; vector 0x30 never came
