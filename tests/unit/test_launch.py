"""Launch configuration, QEMU command line, shared options, stop events (offline)."""

from __future__ import annotations

import argparse
import os
import shutil
import stat
from pathlib import Path

import pytest

from lhvdbg.commands.options import (
    add_launch_arguments,
    add_snapshot_argument,
    launch_config_from_args,
)
from lhvdbg.commands.registry import ShellArgumentParser
from lhvdbg.errors import KernelError, UsageError
from lhvdbg.machine.session import (
    FIRMWARE_DIR_ENV,
    LaunchConfig,
    SessionPaths,
    StopEvent,
    build_qemu_argv,
    firmware_dir,
    firmware_path,
)
from lhvdbg.machine.vector import timer_vector_of
from lhvdbg.x86.cpustate import LapicState, PicChip, PicState


@pytest.fixture
def paths(tmp_path: Path) -> SessionPaths:
    return SessionPaths.inside(tmp_path)


def after(argv: list[str], flag: str) -> list[str]:
    """Every value that follows ``flag`` in ``argv``."""
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]


def test_qemu_command_line_tcg(paths: SessionPaths, tmp_path: Path) -> None:
    kernel = tmp_path / "k.elf"
    config = LaunchConfig(kernel=kernel, append="ticks=3", extra_args=("-smp", "1"))
    argv = build_qemu_argv(config, paths, accel="tcg", kernel=kernel)
    assert argv[0] == "qemu-system-x86_64" and "-S" in argv
    assert after(argv, "-display") == ["none"]
    assert after(argv, "-accel") == ["tcg"]
    assert after(argv, "-m") == ["128"]
    assert after(argv, "-kernel") == [str(kernel)] and after(argv, "-append") == ["ticks=3"]
    assert after(argv, "-action") == ["reboot=shutdown,shutdown=pause"]
    assert after(argv, "-d") == ["int,cpu_reset"] and after(argv, "-D") == [str(paths.int_log)]
    assert after(argv, "-device") == ["isa-debug-exit,iobase=0xf4,iosize=0x04"]
    assert after(argv, "-gdb") == ["chardev:gdb0"]
    chardevs = after(argv, "-chardev")
    assert f"socket,id=gdb0,path={paths.gdb_socket},server=on,wait=off" in chardevs
    assert f"socket,id=qmp0,path={paths.qmp_socket},server=on,wait=off" in chardevs
    assert f"socket,id=hmp0,path={paths.hmp_socket},server=on,wait=off" in chardevs
    assert after(argv, "-mon") == ["chardev=qmp0,mode=control", "chardev=hmp0,mode=readline"]
    assert f"file,id=ser0,path={paths.serial_log}" in chardevs
    assert argv[-2:] == ["-smp", "1"]  # extra arguments come last
    # nothing listens on the network
    assert not any("tcp" in a or "telnet" in a for a in argv)


def test_qemu_command_line_kvm_cdrom_without_debug_exit(paths: SessionPaths) -> None:
    iso = Path("/x/lhv.iso")
    config = LaunchConfig(cdrom=iso, debug_exit=False, memory_mb=64, qemu_system="i386")
    argv = build_qemu_argv(config, paths, accel="kvm", kernel=None)
    assert argv[0] == "qemu-system-i386"
    assert after(argv, "-accel") == ["kvm"] and after(argv, "-m") == ["64"]
    assert "-d" not in argv  # no -d int under KVM (it logs nothing there)
    assert "-device" not in argv and "-kernel" not in argv
    assert after(argv, "-cdrom") == [str(iso)] and after(argv, "-boot") == ["d"]


def test_launch_config_validation() -> None:
    with pytest.raises(UsageError, match="only one of"):
        LaunchConfig(kernel=Path("a"), variant="good")
    with pytest.raises(UsageError, match="unknown accelerator"):
        LaunchConfig(accel="hvf")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="too small"):
        LaunchConfig(memory_mb=1)
    assert LaunchConfig().effective_variant == "pic-unremapped"
    assert LaunchConfig(kernel=Path("k")).effective_variant is None
    assert LaunchConfig.for_variant("good", "i386").describe() == "i386 lhv-good.elf"
    assert LaunchConfig(kernel=Path("/a/k.elf")).describe() == "kernel k.elf"


def test_firmware_location_and_unbuilt_variant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(FIRMWARE_DIR_ENV, raising=False)
    assert firmware_dir() == Path(__file__).resolve().parents[2] / "firmware"
    monkeypatch.setenv(FIRMWARE_DIR_ENV, str(tmp_path))
    assert firmware_path("i386", "good") == tmp_path / "build" / "i386" / "lhv-good.elf"
    with pytest.raises(KernelError) as err:
        LaunchConfig.for_variant("no-such-variant").kernel_path()
    message = str(err.value)
    assert "lhv-no-such-variant.elf is not built" in message
    assert f"make -C {tmp_path}" in message and "\n" not in message
    built = tmp_path / "build" / "amd64" / "lhv-good.elf"
    built.parent.mkdir(parents=True)
    built.write_bytes(b"")
    assert LaunchConfig.for_variant("good").kernel_path() == built


def parser(**kwargs: str) -> argparse.ArgumentParser:
    p = ShellArgumentParser(prog="t")
    add_launch_arguments(p, **kwargs)
    add_snapshot_argument(p)
    return p


def test_launch_options_defaults_and_values() -> None:
    config = launch_config_from_args(parser().parse_args([]))
    assert config == LaunchConfig(variant="pic-unremapped")
    config = launch_config_from_args(parser(default_variant="good").parse_args(["--arch", "i386"]))
    assert (config.variant, config.arch) == ("good", "i386")
    args = parser().parse_args(
        [
            "--kernel", "/k.elf", "--accel", "auto", "--memory", "64", "--append", "a=1",
            "--qemu-arg=-smp", "--qemu-arg=1", "--no-debug-exit", "--qemu-system", "i386",
        ]
    )  # fmt: skip
    config = launch_config_from_args(args)
    assert config.kernel == Path("/k.elf") and config.variant is None
    assert (config.accel, config.memory_mb, config.append) == ("auto", 64, "a=1")
    assert config.extra_args == ("-smp", "1")
    assert not config.debug_exit and config.qemu_binary() == "qemu-system-i386"
    assert parser().parse_args(["--snapshot", "s.json"]).snapshot == Path("s.json")


def test_launch_options_are_exclusive() -> None:
    with pytest.raises(UsageError, match="not allowed with"):
        parser().parse_args(["--kernel", "k", "--variant", "good"])
    with pytest.raises(UsageError, match="invalid choice"):
        parser().parse_args(["--accel", "xen"])
    with pytest.raises(UsageError, match="--memory 0"):
        launch_config_from_args(parser().parse_args(["--memory", "0"]))


def test_session_directory_is_private() -> None:
    paths = SessionPaths.create()
    try:
        mode = stat.S_IMODE(os.stat(paths.directory).st_mode)
        assert mode == 0o700
        assert paths.gdb_socket.parent == paths.directory
        assert len(str(paths.qmp_socket)) < 108  # sun_path limit
    finally:
        shutil.rmtree(paths.directory)


def test_stop_event_exit_values() -> None:
    ev = StopEvent("exited", exit_code=35)
    assert ev.guest_exit_value == 0x11 and not ev.stopped
    assert StopEvent("exited", exit_code=0).guest_exit_value is None  # even: not the device
    assert StopEvent("breakpoint", 0x100, 1).guest_exit_value is None
    d = StopEvent("vector", 0x1002E0, 2, vector=0x20, detail="x").to_dict()
    assert d["address"] == "0x1002e0" and d["vector"] == 0x20 and d["reason"] == "vector"


def chip(irq_base: int, imr: int) -> PicChip:
    return PicChip(irr=0, imr=imr, isr=0, irq_base=irq_base)


def lapic(svr: int, lvt_timer: int, initial: int) -> LapicState:
    return LapicState(
        apic_id=0, svr=svr, lvt_timer=lvt_timer, timer_initial=initial, timer_current=0,
        timer_divide=0, isr=0, irr=0,
    )  # fmt: skip


def test_timer_vector_choice() -> None:
    remapped = PicState(chip(0x20, 0xFE), chip(0x28, 0xFF))
    bios = PicState(chip(0x08, 0xB8), chip(0x70, 0xFF))
    masked = PicState(chip(0x20, 0xFF), chip(0x28, 0xFF))
    running_lapic = lapic(0x1FF, 0x20022, 100000)
    assert timer_vector_of(remapped, running_lapic) == 0x20  # IRQ0 unmasked wins
    assert timer_vector_of(bios, None) == 0x08  # the LHV bug: the PIT on vector 8
    assert timer_vector_of(masked, running_lapic) == 0x22  # LVT timer vector
    assert timer_vector_of(masked, lapic(0x0FF, 0x20022, 1)) == 0x20  # APIC disabled
    assert timer_vector_of(masked, lapic(0x1FF, 0x30022, 1)) == 0x20  # LVT masked
    assert timer_vector_of(None, running_lapic) == 0x22
    assert timer_vector_of(None, None) is None
