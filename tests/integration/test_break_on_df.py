"""``lhvdbg break-on-df`` end to end: every firmware variant, real QEMU and gdb.

Each run boots the variant under TCG (KVM where usable), stops at IDT[8]'s handler (or
the triple fault / the kernel's own exit) and must name the right outcome and first cause.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lhvdbg.cli import main
from lhvdbg.machine.session import kvm_usable
from lhvdbg.state.elf import inspect_kernel
from tests.conftest import firmware_elf

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

CASES = [
    ("amd64", "good", "no-fault", None),
    ("amd64", "no-ltr", "no-fault", None),
    ("amd64", "pic-unremapped", "hardware-interrupt-on-vector-8", "pic-not-remapped"),
    ("amd64", "timer-gate-missing", "double-fault", "gate-not-present"),
    ("amd64", "iret-bad-ss", "double-fault", "iret-bad-selector"),
    ("amd64", "ist-without-tss", "triple-fault", "ist-without-tss"),
    ("amd64", "stack-overflow", "triple-fault", "stack-overflow"),
    ("i386", "good", "no-fault", None),
    ("i386", "no-ltr", "no-fault", None),
    ("i386", "pic-unremapped", "hardware-interrupt-on-vector-8", "pic-not-remapped"),
    ("i386", "timer-gate-missing", "double-fault", "gate-not-present"),
    ("i386", "iret-bad-ss", "double-fault", "iret-bad-selector"),
    ("i386", "stack-overflow", "triple-fault", "stack-overflow"),
]


def _children() -> list[str]:
    """Names of live QEMU/gdb processes whose parent is this test process."""
    me = str(os.getpid())
    names = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = stat[stat.rindex(")") + 2 :].split()[1]
        if ppid == me and comm.startswith(("qemu-system", "gdb")):
            names.append(comm)
    return names


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["break-on-df", *args, "--json"]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


@pytest.mark.parametrize(("arch", "variant", "outcome", "first"), CASES)
def test_variant_outcome_and_first_cause(
    firmware_built: Path,
    capsys: pytest.CaptureFixture[str],
    arch: str,
    variant: str,
    outcome: str,
    first: str | None,
) -> None:
    if not firmware_elf(arch, variant).exists():
        pytest.skip(f"{variant} is not built for {arch}")
    data = run_json(capsys, "--arch", arch, "--variant", variant)
    assert data["outcome"] == outcome
    assert (data["arch"], data["accel"]) == (arch, "tcg")
    if first is None:
        assert data["diagnosis"] == []
        assert data["stop"]["reason"] == "exited"
    else:
        assert data["diagnosis"][0]["id"] == first
        assert data["diagnosis"][0]["evidence"] and data["diagnosis"][0]["fix"]
        assert data["chain"], "a fault has a chain"
        for step in data["chain"]:
            assert isinstance(step["vector"], int) and isinstance(step["rip"], int)
            assert step["error_code"] is None or isinstance(step["error_code"], int)
    assert not any("tss" in c["id"] for c in data["diagnosis"][:1] if first != "ist-without-tss")
    assert _children() == []


def test_pic_unremapped_chain_is_irq0_on_vector_8_without_error_code(
    firmware_built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = run_json(capsys)  # the defaults: amd64 pic-unremapped, TCG
    assert data["kernel"].endswith("lhv-pic-unremapped.elf")
    (step,) = data["chain"]
    assert (step["vector"], step["source"], step["error_code"]) == (8, "hardware", None)
    assert data["stop"]["reason"] == "vector"
    assert data["triple_fault"] is False


def test_lhv_amd64_null_tr_is_a_harmless_difference_not_the_cause(
    firmware_built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The default demo is LHV amd64's own state: PIC not remapped and ltr never run.
    The PIC is the cause; the null TR is listed as a difference that did not matter."""
    data = run_json(capsys)
    assert data["diagnosis"][0]["id"] == "pic-not-remapped"
    assert data["diagnosis"][0]["confidence"] == "high"
    for cause in data["diagnosis"]:
        assert cause["id"] not in ("ist-without-tss", "tss-rsp0-invalid")
        assert "TSS" not in cause["summary"] and "TR " not in cause["summary"]
    assert data["reference"] == "lhv-amd64"
    assert data["relevant_differences"] == []
    harmless = {d["field"]: d for d in data["irrelevant_differences"]}
    tr = harmless["tr.selector"]
    assert (tr["reference"], tr["actual"], tr["matters"]) == (0x20, 0, False)
    assert "ltr never ran" in tr["explanation"] and "harmless" in tr["explanation"]
    assert (harmless["tr.limit"]["actual"], harmless["tr.base"]["actual"]) == (0xFFFF, 0)
    assert any("reset state: ltr never ran" in line for line in data["evidence"])
    assert _children() == []


@pytest.mark.parametrize("arch", ["amd64", "i386"])
def test_stack_overflow_walks_cr2_live(
    firmware_built: Path, capsys: pytest.CaptureFixture[str], arch: str
) -> None:
    """The #PF's CR2 is walked through the live page tables (HMP xp) to the guard page."""
    symbols = inspect_kernel(firmware_elf(arch, "stack-overflow")).symbols
    data = run_json(capsys, "--arch", arch, "--variant", "stack-overflow")
    cr2 = data["chain"][0]["cr2"]
    guard = symbols["boot_stack_guard"]
    assert guard <= cr2 < symbols["boot_stack"]
    (line,) = [e for e in data["diagnosis"][0]["evidence"] if e.startswith(f"CR2 {cr2:#x}")]
    assert "is in a not-present page (CR3 0x" in line
    assert f"PTE[{cr2 >> 12 & 0x1FF:#x}] 0x0 P=0" in line
    assert line.endswith(f"boot_stack_guard+{cr2 - guard:#x}: the guard page below boot_stack")
    assert data["evidence"][0].startswith(f"at the stop: RIP {data['stop']['address']:#x} (")
    assert _children() == []


def test_human_output_verdict_first(
    firmware_built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--no-color", "break-on-df", "--variant", "timer-gate-missing"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "verdict: double-fault"
    assert "IDT[0x20] is not present (P=0)" in " ".join(lines[1:3])
    assert "accelerator tcg" in out
    assert out.index("chain") < out.index("[gate-not-present]") < out.index("fix:")


def test_stripped_kernel(
    firmware_built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stripped = tmp_path / "stripped.elf"
    subprocess.run(
        ["objcopy", "--strip-all", str(firmware_elf("amd64", "pic-unremapped")), str(stripped)],
        check=True,
    )
    data = run_json(capsys, "--kernel", str(stripped))
    assert data["outcome"] == "hardware-interrupt-on-vector-8"
    assert data["diagnosis"][0]["id"] == "pic-not-remapped"
    assert data["chain"][0]["symbol"] is None


def test_timeout_is_no_fault(firmware_built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(capsys, "--variant", "good", "--timeout", "0.05")
    assert data["outcome"] == "no-fault"
    assert data["stop"]["reason"] in ("timeout", "exited")


def test_bad_kernel_is_one_line_and_nonzero(firmware_built: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.elf"
    junk.write_text("not an ELF\n")
    proc = subprocess.run(
        [sys.executable, "-m", "lhvdbg", "break-on-df", "--kernel", str(junk)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode != 0
    assert proc.stderr.startswith("lhvdbg: ") and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr


@pytest.mark.kvm
@pytest.mark.skipif(not kvm_usable(), reason="/dev/kvm cannot be opened read-write")
@pytest.mark.parametrize(
    ("variant", "outcome", "first"),
    [
        ("pic-unremapped", "hardware-interrupt-on-vector-8", "pic-not-remapped"),
        ("good", "no-fault", None),
    ],
)
def test_kvm(
    firmware_built: Path,
    capsys: pytest.CaptureFixture[str],
    variant: str,
    outcome: str,
    first: str | None,
) -> None:
    data = run_json(capsys, "--variant", variant, "--accel", "kvm", "--timeout", "30")
    assert data["accel"] == "kvm" and data["int_log"] is False
    assert data["outcome"] == outcome
    if first is not None:
        assert data["diagnosis"][0]["id"] == first
        evidence = " ".join(data["diagnosis"][0]["evidence"])
        assert "no interrupt log (kvm)" in evidence and "no error code" in evidence
        assert "master irq_base=0x08" in evidence
        (step,) = data["chain"]
        assert (step["vector"], step["source"], step["error_code"]) == (8, "hardware", None)
    else:
        assert data["diagnosis"] == []
