"""Resets are not triple faults: the reset kernel (tests/fixtures/kernels/reset-kernel.S)
asks for a reset through port 0x64 and port 0xCF9, or triple-faults; ``run`` and
``break-on-df`` must tell them apart, under TCG (QEMU's log) and KVM (the instruction
before the stop)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lhvdbg.cli import main
from lhvdbg.machine.session import kvm_usable
from tests.kernels import RESET_CF9, RESET_KBC, TRIPLE_FAULT, reset_kernel

pytestmark = pytest.mark.integration

KBC = "keyboard controller reset (0xFE to port 0x64)"
CF9 = "reset control register (port 0xCF9)"


@pytest.fixture(scope="module")
def kernels(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    where = tmp_path_factory.mktemp("reset-kernels")
    return {m: reset_kernel(where, m) for m in (RESET_KBC, RESET_CF9, TRIPLE_FAULT)}


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main([*args, "--json"]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


@pytest.mark.parametrize(
    ("method", "outcome", "how"),
    [(RESET_KBC, "reset-requested", KBC), (RESET_CF9, "reset-requested", CF9),
     (TRIPLE_FAULT, "triple-fault", "QEMU's log says 'Triple fault'")],
)  # fmt: skip
def test_break_on_df_tcg(
    kernels: dict[int, Path],
    capsys: pytest.CaptureFixture[str],
    method: int,
    outcome: str,
    how: str,
) -> None:
    data = cli_json(capsys, "break-on-df", "--kernel", str(kernels[method]))
    assert data["outcome"] == outcome and data["int_log"] is True
    assert data["stop"]["reason"] == "shutdown" and data["stop"]["reset"] == outcome
    assert how in data["stop"]["reset_how"]
    if outcome == "reset-requested":
        assert data["verdict"].startswith("the guest asked for a reset (not a triple fault): ")
        assert how in data["verdict"]
        assert f"serial: reset-kernel: METHOD {method}" in data["evidence"]
        assert data["triple_fault"] is False


@pytest.mark.parametrize(
    ("method", "outcome"),
    [(RESET_KBC, "reset-requested"), (RESET_CF9, "reset-requested"),
     (TRIPLE_FAULT, "triple-fault")],
)  # fmt: skip
def test_run_tcg(
    kernels: dict[int, Path], capsys: pytest.CaptureFixture[str], method: int, outcome: str
) -> None:
    data = cli_json(capsys, "run", "--kernel", str(kernels[method]), "--timeout", "10")
    assert data["outcome"] == outcome
    assert data["shutdown_reason"] == "guest-reset"  # QEMU's word for both
    assert data["serial"] == f"reset-kernel: METHOD {method}\n"


def test_run_says_it_in_one_line(
    kernels: dict[int, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--kernel", str(kernels[RESET_KBC]), "--timeout", "10"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith(f"run: kernel reset-{RESET_KBC}.elf (tcg): the guest asked for a reset ")
    assert KBC in last and "triple" not in last.replace("'Triple fault'", "")


@pytest.mark.kvm
@pytest.mark.skipif(not kvm_usable(), reason="/dev/kvm cannot be opened read-write")
@pytest.mark.parametrize(
    ("method", "outcome", "how"),
    [(RESET_KBC, "reset-requested", "the last instruction was an out: " + KBC),
     (TRIPLE_FAULT, "triple-fault", "no interrupt log; the last instruction did not ask")],
)  # fmt: skip
def test_break_on_df_kvm(
    kernels: dict[int, Path],
    capsys: pytest.CaptureFixture[str],
    method: int,
    outcome: str,
    how: str,
) -> None:
    data = cli_json(
        capsys, "break-on-df", "--kernel", str(kernels[method]), "--accel", "kvm", "--timeout", "5"
    )
    assert data["accel"] == "kvm" and data["int_log"] is False
    assert data["outcome"] == outcome
    assert data["stop"]["reset_how"].startswith(how)


def test_run_timeout_counts_from_the_entry_and_never_started(
    kernels: dict[int, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data = cli_json(capsys, "run", "--kernel", str(kernels[RESET_KBC]), "--boot-timeout", "0.001")
    assert data["outcome"] == "kernel-never-started" and data["kernel_entered"] is False
    assert data["detail"].startswith("the kernel's entry 0x10000c not reached within 0.001 s")


@pytest.mark.kvm
@pytest.mark.skipif(not kvm_usable(), reason="/dev/kvm cannot be opened read-write")
def test_run_kvm_default_timeout(
    kernels: dict[int, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # the default 10 s used to run out in the BIOS of a KVM guest here
    data = cli_json(capsys, "run", "--kernel", str(kernels[RESET_KBC]), "--accel", "kvm")
    assert data["outcome"] == "reset-requested" and data["kernel_entered"] is True
    assert data["reset_how"] == "the last instruction was an out: " + KBC
    assert not [n for n in data.get("notes", []) if "hardware virtualisation" in n]
