"""``lhvdbg trace`` and ``lhvdbg compare`` end to end on the real firmware, on the
system QEMU and (when present) the project-local QEMU 10."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from lhvdbg.cli import main

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
QEMU10 = ROOT / ".qemu10" / "usr" / "bin" / "qemu-system-x86_64"
QEMUS = [
    pytest.param(None, id="qemu-default"),
    pytest.param(
        str(QEMU10),
        id="qemu10",
        marks=pytest.mark.skipif(not QEMU10.is_file(), reason="no project-local QEMU 10"),
    ),
]


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def qemu_args(qemu: str | None) -> list[str]:
    return [] if qemu is None else ["--qemu", qemu]


def decoded(events: list[dict[str, Any]], prefix: str) -> list[str]:
    return [e["decoded"] for e in events if e["decoded"].startswith(prefix)]


@pytest.mark.parametrize("qemu", QEMUS)
def test_good_history_has_icw1_to_4_and_the_pit_at_the_configured_rate(
    firmware_built: Path, capsys: pytest.CaptureFixture[str], qemu: str | None
) -> None:
    events = run_json(capsys, "trace", "--variant", "good", "--append", "hz=250", *qemu_args(qemu))
    names = [(e["name"], e["port"]) for e in events if e["kind"] == "port"]
    for word in ("ICW1", "ICW2", "ICW3", "ICW4"):
        assert (word, "0x20") in names or (word, "0x21") in names
        assert (word, "0xa0") in names or (word, "0xa1") in names
    assert decoded(events, "master ICW2") == ["master ICW2: vector base 0x20"]
    assert decoded(events, "slave ICW2") == ["slave ICW2: vector base 0x28"]
    icw2 = next(e for e in events if e["decoded"].startswith("master ICW2"))
    assert icw2["symbol"].startswith("pic_init+") and icw2["rip"] is not None
    assert decoded(events, "PIT ch0 mode 3, divisor") == ["PIT ch0 mode 3, divisor 4772 = 250 Hz"]
    insns = [e["insn"] for e in events if e["kind"] == "insn"]
    for insn in ("lgdt", "lidt", "ltr", "sti", "wrmsr", "mov cr0", "mov cr3", "mov cr4"):
        assert insn in insns
    assert all(e["source"] == "kernel" for e in events)
    irqs = [e for e in events if e["kind"] == "interrupt" and e["name"] == "irq"]
    assert irqs[0]["value"] == "0x20" and "IRQ0" in irqs[0]["decoded"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


@pytest.mark.parametrize("qemu", QEMUS)
def test_each_system_instruction_is_recorded_once_with_the_value_it_loaded(
    firmware_built: Path, capsys: pytest.CaptureFixture[str], qemu: str | None
) -> None:
    """Two sites side by side both count (the boot's ``lgdt`` right after ``mov %rax,%cr0``),
    and no hit is taken twice or read before its instruction ran (QEMU cuts a step short now
    and then: a ``sti`` was recorded twice, a ``mov cr3`` with CR3 still 0)."""
    events = run_json(capsys, "trace", "--variant", "good", *qemu_args(qemu))
    insns = [e for e in events if e["kind"] == "insn"]
    after_cr0 = insns[[e["insn"] for e in insns].index("mov cr0") + 1]
    assert after_cr0["insn"] == "lgdt" and after_cr0["symbol"].startswith("_text_start+")
    assert [e["insn"] for e in insns].count("sti") == 1
    assert all(int(e["value"], 16) != 0 for e in insns if e["insn"] == "mov cr3")
    lidt = [e for e in insns if e["insn"] == "lidt"]  # not the IVT the loader left (0, 0x3ff)
    assert len(lidt) == 1 and lidt[0]["value"] != "0x0" and lidt[0]["facts"]["limit"] != 0x3FF


@pytest.mark.parametrize("qemu", QEMUS)
def test_a_trace_that_runs_out_of_time_says_its_whole_limit(
    firmware_built: Path, capsys: pytest.CaptureFixture[str], qemu: str | None
) -> None:
    assert main(["trace", "--variant", "good", "--append", "ticks=100000", "--timeout", "1.5",
                 *qemu_args(qemu)]) == 0  # fmt: skip
    last = capsys.readouterr().out.rstrip().splitlines()[-1]
    # the time may run out while the guest runs or between two stops: one wording
    ending = r"ended: timeout after 1\.5 s at \w+(\+0x[0-9a-f]+)? \(0x[0-9a-f]+\)$"
    assert re.search(ending, last), last


@pytest.mark.parametrize("qemu", QEMUS)
def test_pic_unremapped_history_has_no_icw1_and_irq0_on_8(
    firmware_built: Path, capsys: pytest.CaptureFixture[str], qemu: str | None
) -> None:
    events = run_json(capsys, "trace", "--variant", "pic-unremapped", *qemu_args(qemu))
    assert not [e for e in events if e["name"].startswith("ICW")]
    irq = next(e for e in events if e["kind"] == "interrupt" and e["name"] == "irq")
    assert irq["value"] == "0x8"
    assert irq["decoded"].endswith("IRQ0 (master PIC base 0x08, the BIOS's)")
    assert [e["decoded"] for e in events if e["kind"] == "lapic"][:1] == [
        "LAPIC SVR: APIC enabled, spurious vector 0xff"
    ]  # the kernel's LAPIC writes only: the BIOS's come before the entry


def test_from_reset_shows_the_bios_programming_the_pic(
    firmware_built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = run_json(capsys, "trace", "--variant", "pic-unremapped", "--from-reset")
    firmware = [e for e in events if e["source"] == "firmware"]
    assert "master ICW2: vector base 0x08" in [e["decoded"] for e in firmware]
    assert "slave ICW2: vector base 0x70" in [e["decoded"] for e in firmware]
    first_kernel = next(n for n, e in enumerate(events) if e["source"] == "kernel")
    assert all(e["source"] == "kernel" for e in events[first_kernel:])


@pytest.mark.parametrize("qemu", QEMUS)
def test_compare_names_the_pic_divergence_first(
    firmware_built: Path, capsys: pytest.CaptureFixture[str], qemu: str | None
) -> None:
    data = run_json(capsys, "compare", "good", "pic-unremapped", *qemu_args(qemu))
    first = data["first_divergence"]
    assert first["kind"] == "missing"
    assert first["explanation"] == (
        "the good build wrote ICW1–ICW4 (base 0x20) in pic_init; this build never did; "
        "then IRQ0 arrived on 0x08 (in the good build: 0x20)"
    )
    assert first["bad"] == []
    assert {"ICW1", "ICW2", "ICW3", "ICW4"} <= {e["name"] for e in first["good"]}


def test_compare_defaults_to_good_against_the_default_variant(
    firmware_built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = run_json(capsys, "compare")
    assert data["good"]["run"] == "good" and data["bad"]["run"] == "pic-unremapped"
    assert data["first_divergence"]["explanation"].startswith("the good build wrote ICW1–ICW4")


@pytest.mark.parametrize("bad", ["no-ltr", "fault=rsp0:0x1000 no-ltr"])
def test_compare_no_ltr_names_nothing_beyond_the_missing_ltr(
    firmware_built: Path, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    data = run_json(capsys, "compare", "good", bad)
    mattering = [d for d in data["differences"] if d["matters"]]
    assert len(mattering) == 1
    assert [e["insn"] for e in mattering[0]["good"]] == ["ltr"] and mattering[0]["bad"] == []
    assert data["first_divergence"]["explanation"].startswith(
        "the good build ran ltr (TR = selector 0x0020"
    )


def test_compare_rejects_an_unknown_run(
    firmware_built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", "good", "no-such-thing"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'no-such-thing' is not a kernel path" in err[0]


def test_break_on_df_cites_the_history(
    firmware_built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = run_json(capsys, "break-on-df", "--variant", "pic-unremapped")
    cause = data["diagnosis"][0]
    assert cause["id"] == "pic-not-remapped"
    assert (
        "history from the kernel's entry: ICW1 was never written: the PIC kept the BIOS base 0x08"
        in " ".join(cause["evidence"])
    )
