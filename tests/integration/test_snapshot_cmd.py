"""``lhvdbg snapshot`` and ``lhvdbg run`` end to end (real firmware, real QEMU and gdb)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lhvdbg.cli import main
from lhvdbg.state.elf import inspect_kernel
from lhvdbg.state.snapshot import load_snapshot
from tests.conftest import firmware_elf
from tests.firmware_facts import facts

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_snapshot_after_ticks(
    firmware_built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elf = inspect_kernel(firmware_elf("amd64", "good"))
    out = tmp_path / "ticks.json"
    assert main(["snapshot", "--variant", "good", "--after-ticks", "2", "-o", str(out)]) == 0
    stdout = capsys.readouterr().out
    pit = facts("amd64").vectors["PIT"]  # the timer's vector, from the firmware's DWARF
    assert stdout.startswith(f"snapshot: wrote {out} (amd64, long mode, ip isr_{pit}, ")
    assert f"stopped: vector {pit:#x} handler isr_{pit} reached (timer tick 2)" in stdout
    snap = load_snapshot(out)
    assert snap.cpu.ip == elf.symbols[f"isr_{pit}"]
    assert snap.cpu.idtr.base == elf.symbols["idt"]
    assert snap.provenance.kernel_sha256 == elf.sha256
    assert snap.provenance.accel == "tcg" and snap.provenance.qemu_version
    assert snap.pic is not None and snap.pic.master.irq_base == pit
    assert {"gdt", "idt", "tss", "stack", "code"} <= {r.label for r in snap.memory}


def test_snapshot_at_symbol_json(
    firmware_built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elf = inspect_kernel(firmware_elf("i386", "good"))
    out = tmp_path / "main.json"
    args = ["snapshot", "--variant", "good", "--arch", "i386", "--at", "kernel_main"]
    assert main([*args, "-o", str(out), "--json", "--note", "test"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["ip"] == f"{elf.symbols['kernel_main']:#x}"
    assert (info["arch"], info["mode"], info["accel"]) == ("i386", "protected", "tcg")
    snap = load_snapshot(out)
    assert snap.provenance.note.startswith("test")
    assert snap.provenance.stop_reason == f"breakpoint 1 hit at kernel_main ({snap.cpu.ip:#x})"


def test_snapshot_vector_8_and_post_mortem(firmware_built: Path, tmp_path: Path) -> None:
    sym = inspect_kernel(firmware_elf("amd64", "pic-unremapped")).symbols
    df = tmp_path / "df.json"
    assert main(["snapshot", "--variant", "pic-unremapped", "--vector", "8", "-o", str(df)]) == 0
    assert load_snapshot(df).cpu.ip == sym["isr_8"]
    tf = tmp_path / "tf.json"
    assert main(["snapshot", "--variant", "ist-without-tss", "--until-stop", "-o", str(tf)]) == 0
    snap = load_snapshot(tf)
    assert snap.provenance.stop_reason is not None and "shut down" in snap.provenance.stop_reason
    assert snap.cpu.tr.selector == 0


def test_snapshot_usage_errors(
    firmware_built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.json"
    assert main(["snapshot", "--variant", "good", "--at", "nope", "-o", str(out)]) == 2
    assert capsys.readouterr().err == "lhvdbg: unknown symbol: nope\n"
    assert main(["snapshot", "--variant", "good", "--after-ticks", "0", "-o", str(out)]) == 2
    assert capsys.readouterr().err == "lhvdbg: --after-ticks needs N >= 1\n"
    assert not out.exists()


def test_two_snapshot_processes_in_parallel(firmware_built: Path, tmp_path: Path) -> None:
    procs = []
    for arch in ("amd64", "i386"):
        argv = ["snapshot", "--variant", "good", "--arch", arch, "--after-ticks", "3"]
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "lhvdbg", *argv, "-o", str(tmp_path / f"{arch}.json")],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    assert load_snapshot(tmp_path / "amd64.json").cpu.mode == "long"
    assert load_snapshot(tmp_path / "i386.json").cpu.mode == "protected"


def test_run_reports_outcomes(firmware_built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--variant", "good", "--json"]) == 0
    good = json.loads(capsys.readouterr().out)
    assert (good["outcome"], good["exit_value"], good["exit_name"]) == (
        "debug-exit",
        0x10,
        "LHV_EXIT_OK",
    )
    assert good["accel"] == "tcg" and "sti" in good["serial"]
    assert main(["run", "--variant", "ist-without-tss", "--json"]) == 0
    tf = json.loads(capsys.readouterr().out)
    assert tf["outcome"] == "triple-fault" and tf["shutdown_reason"] == "guest-reset"
    assert main(["run"]) == 0  # the default: amd64 pic-unremapped
    text = capsys.readouterr().out
    assert "LHV firmware amd64 variant=pic-unremapped" in text  # the serial, streamed
    last = text.splitlines()[-1]
    assert last.startswith(
        "run: amd64 lhv-pic-unremapped.elf (tcg): guest exited through isa-debug-exit "
        "with 0x11 LHV_EXIT_DOUBLE_FAULT after "
    )


def test_run_timeout_and_int_log(
    firmware_built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "int.log"
    args = ["run", "--variant", "good", "--append", "ticks=100000", "--timeout", "0.5"]
    assert main([*args, "--json", "--int-log", str(log)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["outcome"] == "timeout" and result["elapsed"] >= 0.5
    assert "Servicing hardware INT=0x20" in log.read_text()
