"""``lhvdbg gdb-plugin`` in a real gdb attached to the firmware through a Unix-socket
gdbstub (no lhvdbg session): the ``lhv`` commands print the same tables as the shell
stopped at the same place, and ``lhv diagnose`` names the cause of the LHV bug.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import firmware_elf

ROOT = Path(__file__).resolve().parents[2]
LHVDBG = [sys.executable, "-m", "lhvdbg"]
MARK = "=====lhv-mark====="
ENV = dict(os.environ, COLUMNS="160")  # the same table width in gdb (batch) and the shell
VIEWS = ("gdt", "idt", "idt all", "tss", "pt $rsp", "idt 8")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed"),
]


def plugin_path() -> str:
    out = subprocess.run(
        [*LHVDBG, "gdb-plugin"], capture_output=True, text=True, check=True, cwd=ROOT
    )
    path = out.stdout.strip()
    assert Path(path).is_file() and path.endswith(".py"), out.stdout
    return path


def _qemu(elf: Path, socket: Path, int_log: Path | None) -> subprocess.Popen[bytes]:
    log = ["-d", "int", "-D", str(int_log)] if int_log is not None else []
    return subprocess.Popen(
        ["qemu-system-x86_64", "-S", "-no-user-config", "-display", "none", "-monitor",
         "none", "-serial", "none", "-net", "none", "-accel", "tcg",
         "-chardev", f"socket,id=gdb0,path={socket},server=on,wait=off",
         "-gdb", "chardev:gdb0", *log, "-kernel", str(elf)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def in_gdb(
    elf: Path, stop_at: list[str], commands: list[str], int_log: Path | None = None
) -> list[str]:
    """Run ``commands`` in a batch gdb attached to a fresh QEMU on ``elf`` (its ``-d int``
    log written to ``int_log`` when given) after the ``stop_at`` commands; return each
    one's output."""
    with tempfile.TemporaryDirectory(prefix="lhvgdb-") as folder:
        Path(folder).chmod(0o700)
        socket = Path(folder) / "gdb.sock"
        qemu = _qemu(elf, socket, int_log)
        try:
            deadline = time.monotonic() + 10
            while not socket.exists() and qemu.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert socket.exists(), "QEMU did not open its gdbstub socket"
            args = ["gdb", "-nx", "-batch", "-ex", "set architecture i386:x86-64"]
            args += ["-ex", f"file {elf}", "-ex", f"target remote {socket}"]
            args += ["-ex", f"source {plugin_path()}"]
            for line in stop_at:
                args += ["-ex", line]
            for line in commands:
                args += ["-ex", f"echo {MARK}\\n", "-ex", f"lhv {line}"]
            out = subprocess.run(
                args, capture_output=True, text=True, timeout=90, check=False, env=ENV
            )
        finally:
            qemu.terminate()
            qemu.wait(timeout=10)
    parts = out.stdout.split(MARK + "\n")
    assert len(parts) == len(commands) + 1, out.stdout + out.stderr
    parts[-1] = parts[-1].split("[Inferior 1")[0]  # gdb's detach line at the end
    return parts[1:]


def in_shell(commands: list[str]) -> list[str]:
    """The same commands in ``lhvdbg shell`` stopped at pit_init."""
    first = ["set context off", "break pit_init", "continue", *commands, "quit"]
    args = [*LHVDBG, "shell", "--variant", "good"]
    for line in first:
        args += ["-x", line]
    out = subprocess.run(
        args, capture_output=True, text=True, cwd=ROOT, timeout=90, check=True, env=ENV
    )
    parts = re.split(r"^lhvdbg> .*\n", out.stdout, flags=re.M)  # each -x line is echoed
    assert len(parts) == len(first) + 1, out.stdout + out.stderr
    return parts[4:-1]


@pytest.fixture
def good_elf(firmware_built: Path) -> Iterator[Path]:
    yield firmware_elf("amd64", "good")


def test_plugin_tables_equal_the_shells(good_elf: Path) -> None:
    ours = in_gdb(good_elf, ["break pit_init", "continue"], list(VIEWS))
    theirs = in_shell(list(VIEWS))
    for view, plugin_text, shell_text in zip(VIEWS, ours, theirs, strict=True):
        assert plugin_text == shell_text, view
    assert "0x08   #DF" in ours[0] or "GDT base" in ours[0]
    assert ours[1].startswith("IDT base ") and "stubs" in ours[1]
    assert "page walk of 0x" in ours[4]


def test_plugin_context_and_diagnose(firmware_built: Path) -> None:
    elf = firmware_elf("amd64", "pic-unremapped")
    context, diagnose, usage = in_gdb(
        elf, ["hbreak isr_8", "continue"], ["context", "diagnose", "frobnicate"]
    )
    assert "── long mode, 64-bit code, CPL 0 ──" in context
    assert "=> 0x100160 <isr_8>:" in context
    assert "verdict: hardware-interrupt-on-vector-8" in diagnose
    assert "[pic-not-remapped]" in diagnose
    assert usage.startswith("usage: lhv gdt|idt|tss|pt|context|diagnose")


def test_plugin_diagnose_reads_the_log_of_your_qemu(firmware_built: Path, tmp_path: Path) -> None:
    """A QEMU started with ``-d int -D FILE``: ``lhv diagnose --int-log FILE`` has the chain."""
    elf = firmware_elf("amd64", "pic-unremapped")
    log = tmp_path / "int.log"
    (diagnose,) = in_gdb(elf, ["hbreak isr_8", "continue"], [f"diagnose --int-log {log}"], log)
    assert "interrupt log yes" in diagnose
    assert "IRQ0 (master PIC) on vector 0x08" in diagnose and "first vector 8" in diagnose
    assert "[pic-not-remapped]" in diagnose
