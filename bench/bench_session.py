"""Latency of the live session's operations, against plain pygdbmi defaults (prints only).

Session start (``Session(config)`` until gdb is connected and QMP is up) is timed first:
the first start in the process (imports included) and the median of ``--starts`` more.
Then, in one run on the amd64 ``good`` firmware stopped at its first timer tick:

* lhvdbg: ``capture()`` (3 round trips), one 4 KiB memory read, one 16-byte read, one
  single step, one ``info registers`` over QMP;
* baseline: the same gdb operations with ``pygdbmi.GdbController.write()`` and its default
  arguments (it keeps reading until 0.2 s pass without output after each reply), on a
  second QEMU, and a capture built from the same reads issued that way one by one.

Usage: ``.venv/bin/python bench/bench_session.py [--repeat N] [--starts N]``. Never
asserts on timing.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lhvdbg.machine.session import (  # noqa: E402
    LaunchConfig,
    Session,
    SessionPaths,
    build_qemu_argv,
)


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm up
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples)


def lhvdbg_figures(config: LaunchConfig, repeat: int) -> dict[str, float]:
    with Session(config) as s:
        event = s.run_to_timer(count=1, timeout=10)
        assert event.reason == "vector", event.detail
        cpu = s.target.cpu()
        # stepping moves the guest on, so measure it last, after the state reads
        figures = {
            "capture()": median_ms(s.capture, repeat),
            "read 4 KiB": median_ms(lambda: s.read_memory(cpu.idtr.base, 4096), repeat),
            "read 16 B": median_ms(lambda: s.read_memory(cpu.idtr.base, 16), repeat),
            "QMP info registers": median_ms(lambda: s.hmp("info registers"), repeat),
            "stepi": median_ms(s.stepi, repeat),
        }
        figures["capture regions"] = float(len(s.capture().memory))
    return figures


def baseline_figures(config: LaunchConfig, repeat: int) -> dict[str, float]:
    """The same operations with pygdbmi's GdbController.write() defaults."""
    from pygdbmi.gdbcontroller import GdbController

    from lhvdbg.machine.qmp import QmpClient
    from lhvdbg.state.elf import inspect_kernel

    kernel = config.kernel_path()
    assert kernel is not None
    sym = inspect_kernel(kernel).symbols
    paths = SessionPaths.create()
    argv = build_qemu_argv(config, paths, accel="tcg", kernel=kernel)
    qemu = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    gdb = None
    qmp = None
    try:
        while not paths.gdb_socket.exists():
            time.sleep(0.005)
        gdb = GdbController()
        for cmd in (
            "-gdb-set architecture i386:x86-64",
            f"-file-symbol-file {kernel}",
            f"-target-select remote {paths.gdb_socket}",
            f"-break-insert -h *{sym['isr_32']:#x}",
            "-exec-continue",
        ):
            gdb.write(cmd)
        time.sleep(0.5)  # the breakpoint at the first tick is long hit by now
        qmp = QmpClient(paths.qmp_socket)
        from lhvdbg.x86.hmp import parse_info_registers

        cpu = parse_info_registers(qmp.hmp("info registers"))

        def read(addr: int, size: int) -> object:
            assert gdb is not None
            return gdb.write(f"-data-read-memory-bytes {addr:#x} {size}")

        def capture() -> None:
            assert qmp is not None
            for command in ("info registers", "info pic", "info lapic"):
                qmp.hmp(command)
            read(cpu.gdtr.base, cpu.gdtr.limit + 1)
            read(cpu.idtr.base, cpu.idtr.limit + 1)
            read(cpu.tr.base, cpu.tr.limit + 1)
            read(cpu.sp - 0x100, 0x300)
            read(cpu.ip - 0x20, 0x60)
            read((cpu.sp - 1) & ~0xFFF, 0x1000)  # the RSP0 page

        def step() -> object:
            assert gdb is not None
            return gdb.write("-exec-step-instruction")

        small = max(3, repeat // 10)  # each baseline call costs >= 0.2 s
        return {
            "capture()": median_ms(capture, small),
            "read 4 KiB": median_ms(lambda: read(cpu.idtr.base, 4096), small),
            "read 16 B": median_ms(lambda: read(cpu.idtr.base, 16), small),
            "stepi": median_ms(step, small),
        }
    finally:
        if qmp is not None:
            qmp.close()
        if gdb is not None:
            gdb.exit()
        qemu.kill()
        qemu.wait()
        for f in paths.directory.iterdir():
            f.unlink()
        paths.directory.rmdir()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--starts", type=int, default=15, help="session starts timed")
    args = parser.parse_args()
    config = LaunchConfig.for_variant("good", "amd64")
    try:
        config.kernel_path()
    except Exception as exc:
        print(f"bench_session: {exc}")
        return 1
    starts = []
    for _ in range(args.starts + 1):  # the first one warms caches and imports
        started = time.perf_counter()
        with Session(config) as s:
            starts.append((time.perf_counter() - started) * 1e3)
            accel, version = s.accel, s.qemu_version
    up = statistics.median(starts[1:])
    ours = lhvdbg_figures(config, args.repeat)
    base = baseline_figures(config, args.repeat)
    print(f"QEMU {version}, accel {accel}, firmware amd64 lhv-good.elf, medians of {args.repeat}")
    print(
        f"session start (QEMU -S + gdb connected + QMP): {up:.1f} ms "
        f"(median of {args.starts}; first, with imports: {starts[0]:.1f} ms)"
    )
    print(f"{'operation':<22}{'lhvdbg ms':>12}{'pygdbmi default ms':>21}{'ratio':>9}")
    for name, ms in ours.items():
        if name == "capture regions":
            continue
        if name in base:
            ratio = base[name] / ms if ms else float("inf")
            print(f"{name:<22}{ms:>12.2f}{base[name]:>21.1f}{ratio:>8.0f}x")
        else:
            print(f"{name:<22}{ms:>12.2f}{'-':>21}{'-':>9}")
    print(f"capture holds {int(ours['capture regions'])} memory regions + registers, PIC, LAPIC")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
