"""Record/replay on the real firmware (the system QEMU, 7.2 here): ``last-write`` finds
the store that wrote a gate and the one that wrote TSS.RSP0; reverse-stepi steps back."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lhvdbg.errors import UsageError
from lhvdbg.machine.replay import (
    last_write,
    record_config,
    replay_config,
    resolve_target,
    reverse_continue,
    reverse_stepi,
)
from lhvdbg.machine.session import LaunchConfig, Session

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img (qemu-utils) missing"),
]


def record(path: Path, append: str = "") -> Path:
    config = LaunchConfig.for_variant("good", "amd64", append=append)
    with Session(record_config(config, path)) as session:
        assert session.cont(timeout=30).reason == "exited"
    return path


def test_last_write_finds_the_gate_store_and_the_rsp0_store(
    firmware_built: Path, tmp_path: Path
) -> None:
    path = record(tmp_path / "good.rr")
    assert path.stat().st_size > 0 and path.with_name("good.rr.qcow2").is_file()
    with Session(replay_config(path)) as session:
        session.break_at("pic_init")
        assert session.cont(timeout=30).reason == "breakpoint"
        gate_target = resolve_target(session, "idt[0x20]")
        mine = session.watch(gate_target.address, 8)  # the user's own, on the same bytes
        gate = last_write(session, gate_target)
        assert gate.found and gate.symbol.startswith("idt_init+")
        assert mine in session.breakpoint_numbers()  # kept, and enabled again
        (row,) = session.gdb.command(f"-break-info {mine}").payload["BreakpointTable"]["body"]
        assert row["enabled"] == "y"
        assert gate.instruction.startswith("mov")
        assert gate.old != gate.new and len(gate.new) == 16
        assert session.pc() == gate.rip  # stopped before the store
        rsp0 = last_write(session, resolve_target(session, "tss.rsp0"))
        assert rsp0.found and rsp0.symbol.startswith("tss_init+")
        assert int.from_bytes(rsp0.old, "little") == 0
        assert session.kernel_info is not None
        top = session.kernel_info.address_of("boot_stack_top")
        assert int.from_bytes(rsp0.new, "little") == top


def test_last_write_lands_on_the_injected_fault(firmware_built: Path, tmp_path: Path) -> None:
    path = record(tmp_path / "np.rr", "fault=gate-present:0x20:0")
    with Session(replay_config(path)) as session:
        # the replay of `sti; hlt` may wait forever for its IRQ here: a timeout stops
        # it there too, after the injection (applied right before sti)
        assert session.cont(timeout=5).reason in ("breakpoint", "timeout", "exited", "shutdown")
        gate = last_write(session, resolve_target(session, "idt[0x20]"))
        assert gate.found and gate.symbol.startswith("fault_apply_idt+")
        assert gate.old[5] & 0x80 and not gate.new[5] & 0x80  # the P bit cleared


def test_reverse_steps_and_refusals(firmware_built: Path, tmp_path: Path) -> None:
    path = record(tmp_path / "good.rr")
    with Session(replay_config(path)) as session:
        session.break_at("pic_init")
        assert session.cont(timeout=30).reason == "breakpoint"
        at = session.pc()
        back = reverse_stepi(session)
        assert back.reason == "step" and back.address != at
        session.break_at("idt_init")  # runs before pic_init
        event = reverse_continue(session)
        assert event.reason == "breakpoint" and event.address == session.resolve("idt_init")
        with pytest.raises(UsageError, match="a register is not memory"):
            resolve_target(session, "rax")
    with pytest.raises(UsageError, match="not a recording"):
        replay_config(tmp_path / "nothing.rr")
