"""The live session against the real LHV firmware in real QEMU (TCG) with real gdb.

Expected values come from the firmware ELF (symbols via pyelftools) and from the x86
layouts, never retyped: the GDT/IDT/TSS bases are the ``gdt``/``idt``/``tss`` symbols,
gate targets are the ``isr_N`` stubs, the TR descriptor is found in the captured GDT.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from lhvdbg.errors import MemoryNotCaptured, QmpError, StateError, UsageError
from lhvdbg.machine.launch import qemu_version
from lhvdbg.machine.runstate import Runstate
from lhvdbg.machine.session import LaunchConfig, Session
from lhvdbg.state.elf import inspect_kernel
from lhvdbg.state.snapshot import Snapshot
from lhvdbg.x86.segments import (
    gate_layout,
    gate_size,
    is_tss_type,
    segment_descriptor_layout,
    system_descriptor_layout,
)
from lhvdbg.x86.tss import TSS_FULL_LIMIT
from tests.conftest import firmware_elf

pytestmark = pytest.mark.integration


def gate_target(snap: Snapshot, vector: int) -> int:
    mode = snap.cpu.mode
    size = gate_size(mode)
    gate = gate_layout(mode).decode(snap.read(snap.cpu.idtr.base + vector * size, size))
    assert gate.values["present"] == 1
    return int(gate.values["offset"])


def descriptor(snap: Snapshot, selector: int, size: int = 8) -> bytes:
    return snap.read(snap.cpu.gdtr.base + (selector & ~7), size)


@pytest.mark.parametrize("arch", ["amd64", "i386"])
def test_capture_at_first_timer_tick(firmware_built: Path, arch: str) -> None:
    elf = inspect_kernel(firmware_elf(arch, "good"))
    sym = elf.symbols
    with Session(LaunchConfig.for_variant("good", arch)) as s:
        # the QEMU under test (7.2 by default, 10 with $LHVDBG_QEMU), as its -version says
        assert s.accel == "tcg" and s.qemu_version == qemu_version(s.qemu_path)
        event = s.run_to_timer(count=1, timeout=10)
        assert event.reason == "vector", event.detail
        snap = s.capture()
    cpu = snap.cpu
    long_mode = arch == "amd64"
    assert cpu.mode == ("long" if long_mode else "protected")
    assert snap.arch == arch
    # tables where the ELF says they are
    assert cpu.gdtr.base == sym["gdt"]
    assert cpu.idtr.base == sym["idt"] and cpu.idtr.limit == elf.sizes["idt"] - 1
    assert cpu.tr.base == sym["tss"] and cpu.tr.limit >= TSS_FULL_LIMIT
    # the TR descriptor in the captured GDT is a TSS at the tss symbol
    mode = cpu.mode
    tr_desc = system_descriptor_layout(mode).decode(
        descriptor(snap, cpu.tr.selector, 16 if long_mode else 8)
    )
    assert is_tss_type(tr_desc.values["type"], mode)
    assert tr_desc.values["base"] == sym["tss"]
    # CS names a present code segment (64-bit with L=1 on amd64)
    cs_desc = segment_descriptor_layout(mode).decode(descriptor(snap, cpu.segments["cs"].selector))
    assert cs_desc.values["s"] == 1 and cs_desc.values["type"] & 0x8
    assert cs_desc.values["l"] == (1 if long_mode else 0)
    # the timer stop: the PIC was remapped, IDT[irq_base] leads to isr_<irq_base>
    assert snap.pic is not None
    base = snap.pic.master.irq_base
    assert event.vector == base and base != 0x08
    assert snap.pic.slave.irq_base == base + 8
    assert gate_target(snap, base) == sym[f"isr_{base}"] == event.address == cpu.ip
    assert gate_target(snap, 8) == sym["isr_8"]
    # the interrupt frame on the stack: return RIP inside the kernel, then kernel CS
    word = 8 if long_mode else 4
    frame = snap.read(cpu.sp, 2 * word)
    ret_ip, ret_cs = struct.unpack("<QQ" if long_mode else "<II", frame)
    assert elf.symbolize(ret_ip) != f"{ret_ip:#x}"
    assert ret_cs & 0xFFFF == cpu.segments["cs"].selector
    labels = {r.label for r in snap.memory}
    assert {"gdt", "idt", "tss", "stack", "code"} <= labels
    assert ("rsp0" if long_mode else "esp0") in labels
    code = snap.region("code")
    assert code is not None and code.address <= cpu.ip < code.end
    assert code.data[cpu.ip - code.address :][:4] == elf.read_vaddr(cpu.ip, 4)
    prov = snap.provenance
    assert prov.accel == "tcg" and prov.kernel_sha256 == elf.sha256
    assert prov.stop_reason and "vector" in prov.stop_reason
    assert snap.symbols["idt"] == sym["idt"]


def test_32_bit_kernel_on_qemu_x86_64_and_mode_switch(firmware_built: Path) -> None:
    # an ELF32 symbol file with qemu-system-x86_64: no 'g' packet error
    with Session(LaunchConfig.for_variant("good", "i386")) as s:
        assert s.read_registers(["rip"]) == {"rip": 0xFFF0}
        s.break_at("kernel_main")
        assert s.cont(timeout=10).reason == "breakpoint"
        assert s.pc() == s.resolve("kernel_main")
        assert s.target.cpu().mode == "protected"
    # the ELF64 firmware: multiboot enters 32-bit code, the kernel switches to long mode
    elf = inspect_kernel(firmware_elf("amd64", "good"))
    with Session(LaunchConfig.for_variant("good", "amd64")) as s:
        s.break_at(elf.entry)
        ev = s.cont(timeout=10)
        assert ev.reason == "breakpoint" and ev.address == elf.entry
        assert s.target.cpu().mode == "protected"
        assert s.read_registers(["rip"])["rip"] == elf.entry
        s.break_at("kernel_main")
        assert s.cont(timeout=10).address == elf.symbols["kernel_main"]
        assert s.target.cpu().mode == "long"
        regs = s.read_registers(["rip", "rsp", "cs"])
        assert (
            regs["rip"] == elf.symbols["kernel_main"]
            and regs["cs"] == s.target.cpu().segments["cs"].selector
        )


def test_qemu_system_i386(firmware_built: Path) -> None:
    config = LaunchConfig.for_variant("good", "i386", qemu_system="i386")
    with Session(config) as s:
        assert "qemu-system-i386" in s.qemu_argv[0]
        s.break_at("kernel_main")
        assert s.cont(timeout=10).reason == "breakpoint"
        assert s.read_registers(["eip"])["eip"] == s.resolve("kernel_main")


def test_breakpoints_memory_registers_steps(firmware_built: Path) -> None:
    elf = inspect_kernel(firmware_elf("amd64", "good"))
    with Session(LaunchConfig.for_variant("good", "amd64")) as s:
        soft = s.break_at("kernel_main")
        hard = s.break_at(elf.symbols["isr_32"], hardware=True)
        table = s.breakpoints()
        assert [(b["number"], b["hardware"]) for b in table] == [(soft, False), (hard, True)]
        assert table[1]["address"] == elf.symbols["isr_32"]
        ev = s.cont(timeout=10)
        assert (ev.reason, ev.breakpoint) == ("breakpoint", soft)
        # a stop reads as a stop, not as the "breakpoint N at ..." of setting one
        assert (
            ev.detail == f"breakpoint {soft} hit at kernel_main ({elf.symbols['kernel_main']:#x})"
        )
        s.delete(soft)
        with pytest.raises(UsageError, match="no breakpoint number"):
            s.delete(soft)
        ev = s.cont(timeout=10)
        assert (ev.breakpoint, ev.address) == (hard, elf.symbols["isr_32"])
        assert s.breakpoints()[0]["hits"] == 1
        step = s.stepi()
        assert step.reason == "step" and step.address is not None
        assert step.address > elf.symbols["isr_32"]
        # memory: kernel text matches the ELF; writes read back; strings end at NUL
        addr = elf.symbols["kernel_main"]
        assert s.read_memory(addr, 16) == elf.read_vaddr(addr, 16)
        scratch = s.read_registers(["rsp"])["rsp"] - 0x200
        s.write_memory(scratch, b"lhvdbg\0tail")
        assert s.read_string(scratch) == "lhvdbg"
        # registers
        s.write_register("rax", 0x1234_5678_9ABC)
        assert s.read_registers(["rax"]) == {"rax": 0x1234_5678_9ABC}
        frames = s.backtrace()
        assert frames[0]["address"] == step.address
        with pytest.raises(UsageError, match="unknown symbol"):
            s.break_at("no_such_symbol")
        # QMP's error replies keep their class
        with pytest.raises(QmpError) as err:
            s.qmp.execute("no-such-command")
        assert err.value.error_class == "CommandNotFound"
        assert s.runstate is Runstate.STOPPED
        s.delete()
        assert s.breakpoints() == []
        end = s.cont(timeout=10)
        assert end.reason == "exited" and end.guest_exit_value is not None
        assert not s.alive and s.runstate is Runstate.EXITED
        # an exited session refuses reads with its state, and still answers run control
        with pytest.raises(StateError, match=r"read memory: the session is exited: QEMU has"):
            s.read_memory(addr, 4)
        assert s.cont(timeout=1).reason == "exited" and s.stepi().reason == "exited"
    assert s.runstate is Runstate.CLOSED


def test_stripped_kernel_stops_at_the_idt_handler(firmware_built: Path, tmp_path: Path) -> None:
    full = firmware_elf("amd64", "good")
    stripped = tmp_path / "lhv-stripped.elf"
    subprocess.run(["objcopy", "--strip-all", str(full), str(stripped)], check=True)
    sym = inspect_kernel(full).symbols
    with Session(LaunchConfig(kernel=stripped)) as s:
        assert s.kernel_info is not None and s.kernel_info.stripped
        ev = s.run_to_vector(0x20, count=3, timeout=10)
        assert ev.reason == "vector" and ev.address == sym["isr_32"]
        assert ev.detail.endswith("(entry 3)")
        assert s.breakpoints(internal=True) == []  # internal breakpoints removed
        snap = s.capture()
        assert snap.symbols == {}
        ticks = struct.unpack("<Q", s.read_memory(sym["pit_ticks"], 8))[0]
        assert ticks == 2  # two handler runs finished before the third entry


def test_pic_unremapped_timer_lands_on_vector_8(firmware_built: Path) -> None:
    sym = inspect_kernel(firmware_elf("amd64", "pic-unremapped")).symbols
    with Session(LaunchConfig.for_variant("pic-unremapped", "amd64")) as s:
        ev = s.run_to_vector(8, timeout=10)
        assert ev.reason == "vector" and ev.vector == 8 and ev.address == sym["isr_8"]
        pic = s.target.pic()
        assert pic is not None and pic.master.irq_base == 0x08
        assert s.timer_vector() == 8
        # no error code: the word at RSP is the interrupted RIP, then the kernel CS
        rsp = s.read_registers(["rsp"])["rsp"]
        rip, cs = struct.unpack("<QQ", s.read_memory(rsp, 16))
        assert s.symbolize(rip) != f"{rip:#x}" and cs == s.target.cpu().segments["cs"].selector
        assert "Servicing hardware INT=0x08" in s.int_log_text()


def test_triple_fault_pauses_for_post_mortem(firmware_built: Path) -> None:
    with Session(LaunchConfig.for_variant("ist-without-tss", "amd64")) as s:
        ev = s.cont(timeout=10)
        assert ev.reason == "shutdown" and ev.address is not None
        assert s.alive  # paused, not gone
        assert "Triple fault" in s.int_log_text()
        assert any(e.name == "SHUTDOWN" for e in s.events())
        snap = s.capture()
        assert snap.cpu.tr.selector == 0 and snap.cpu.tr.base == 0  # ltr never ran
        assert s.cont(timeout=1) is ev  # a shut-down VM does not run again
        assert s.stepi() is ev and s.runstate is Runstate.SHUTDOWN


@pytest.mark.parametrize("arch", ["amd64", "i386"])
def test_capture_keeps_the_stack_above_an_unmapped_guard_page(
    firmware_built: Path, arch: str
) -> None:
    # stack-overflow: #PF in the guard page, #DF on the same dead stack, triple fault; the
    # #DF handler is never entered, so the triple fault is where the stack can be seen
    sym = inspect_kernel(firmware_elf(arch, "stack-overflow")).symbols
    guard, stack = sym["boot_stack_guard"], sym["boot_stack"]
    with Session(LaunchConfig.for_variant("stack-overflow", arch)) as s:
        assert s.cont(timeout=10).reason == "shutdown"
        snap = s.capture()
        sp = snap.cpu.sp
        # the stack pointer is inside the not-present page, or at its top when the push
        # that faulted left it unchanged (amd64 since firmware b8527d8)
        assert guard <= sp <= stack
        region = snap.region("stack")
        assert region is not None
        # the window RSP-0x100..RSP+0x200 clipped to its readable part, from boot_stack
        assert region.address == stack and region.end == sp + 0x200
        assert region.data == s.read_memory(stack, len(region.data))
        assert f"not captured (unreadable): stack {sp - 0x100:#x}-{stack:#x}" in (
            snap.provenance.note
        )
        assert {"gdt", "idt", "tss", "code"} <= {r.label for r in snap.memory}
        with pytest.raises(MemoryNotCaptured):
            snap.read(sp - 4, 4)  # where the faulting push went
        # a region with a hole in the middle: both sides kept, the hole named
        runs = s.read_memory_readable([(guard - 0x10, 0x1020)])[0]
        assert runs == [
            (guard - 0x10, s.read_memory(guard - 0x10, 0x10)),
            (stack, s.read_memory(stack, 0x10)),
        ]
        assert s.read_memory_many([(guard - 0x10, 0x20)], check=False) == [None]


def test_two_sessions_at_once(firmware_built: Path) -> None:
    with (
        Session(LaunchConfig.for_variant("good", "amd64")) as a,
        Session(LaunchConfig.for_variant("good", "i386")) as b,
    ):
        assert a.paths.directory != b.paths.directory
        a.break_at("kernel_main")
        b.break_at("kernel_main")
        assert a.cont(timeout=10).reason == b.cont(timeout=10).reason == "breakpoint"
        assert a.capture().cpu.mode == "long"
        assert b.capture().cpu.mode == "protected"
        dirs = (a.paths.directory, b.paths.directory)
    assert not any(d.exists() for d in dirs)


def test_start_when_qemu_is_slower_than_gdb(
    firmware_built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # gdb's -target-select goes out with its set-up; a QEMU that opens its socket late
    # makes it fail once ("No such file"), then the session waits and connects again
    import lhvdbg.machine.process as process

    real_popen = process.popen_owned

    def late_qemu(argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        if "qemu-system" in argv[0]:
            argv = ["sh", "-c", 'sleep 1.5; exec "$0" "$@"', *argv]  # gdb is slow on a busy host
        return real_popen(argv, **kwargs)

    monkeypatch.setattr(process, "popen_owned", late_qemu)
    with Session(LaunchConfig.for_variant("good", "amd64")) as s:
        connects = [ln for ln in s.gdb.transcript if "target-select" in ln]
        assert len(connects) == 2
        assert any("No such file" in ln for ln in s.gdb.transcript)
        s.break_at("kernel_main")
        event = s.cont(timeout=10)
        assert event.reason == "breakpoint" and event.address == s.resolve("kernel_main")


def test_reset_restarts_with_the_same_config(firmware_built: Path) -> None:
    with Session(LaunchConfig.for_variant("good", "amd64")) as s:
        s.break_at("kernel_main")
        s.cont(timeout=10)
        first = s.paths.directory
        s.reset()
        assert s.paths.directory != first and not first.exists()
        assert s.breakpoints() == []
        assert s.read_registers(["rip"]) == {"rip": 0xFFF0}
