"""diff-tss on real captures: what differs from the reference and whether it matters now."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from lhvdbg.diagnose.events import InterruptEvent
from lhvdbg.diagnose.tss_diff import diff_tss, snapshot_tables, tss_needs, vector_ranges
from lhvdbg.state.references import load_reference
from lhvdbg.state.snapshot import Snapshot, load_snapshot
from tests.firmware_facts import facts

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SNAPSHOTS = FIXTURES / "snapshots"
SESSION = FIXTURES / "intlog" / "session"
AMD64 = facts("amd64")  # the firmware the LHV snapshots were captured from


def snap(path: Path) -> Snapshot:
    return load_snapshot(path)


def fields(diff):  # type: ignore[no-untyped-def]
    return {d.field: d for d in diff.differences}


def test_no_ltr_against_lhv_good_differs_only_harmlessly() -> None:
    actual = snap(SNAPSHOTS / "lhv-no-ltr-amd64.json")
    good = snap(SNAPSHOTS / "lhv-good-amd64.json")
    diff = diff_tss(actual, good, reference_name="lhv-amd64")
    by = fields(diff)
    tss = AMD64.selectors["TSS"]
    assert by["tr.selector"].reference == tss and by["tr.selector"].actual == 0
    assert by["tr.limit"].actual == 0xFFFF
    assert "ltr never ran" in by["tr.selector"].explanation
    gdt_type = by[f"gdt[{tss:#04x}].type"]
    assert gdt_type.reference == 0xB and gdt_type.actual == 0x9  # busy vs available
    assert diff.mattering == ()
    assert not diff.needs.any
    assert "harmless" in by["tr.selector"].explanation
    assert any("TSS64-busy" in n for n in diff.notes)
    # The outer-ring segments are a warning for later, not a reason now.
    assert any("once the kernel enters ring 3" in n for n in diff.notes)


def test_the_same_null_tr_matters_once_a_gate_uses_an_ist() -> None:
    actual = snap(SESSION / "ist-without-tss.amd64.json")
    good = snap(SNAPSHOTS / "lhv-good-amd64.json")
    diff = diff_tss(actual, good)
    by = fields(diff)
    assert diff.needs.ist and AMD64.vectors["PIT"] in diff.needs.ist[1]
    assert by["tr.selector"].matters and by["tr.base"].matters
    assert by["tss.ist1"].matters
    good_tss = snapshot_tables(good).tss
    assert good_tss is not None and by["tss.ist1"].reference == good_tss.values["ist1"] != 0
    assert by["tss.ist1"].actual == int.from_bytes(actual.read(0x24, 8), "little")
    assert "not canonical" in by["tss.ist1"].explanation
    # Only what the CPU needs is compared against the IVT bytes.
    assert "tss.ist2" not in by and "tss.rsp0" not in by


def test_privilege_change_makes_rsp0_matter() -> None:
    actual = snap(SNAPSHOTS / "lhv-no-ltr-amd64.json")
    good = snap(SNAPSHOTS / "lhv-good-amd64.json")
    ring3 = [InterruptEvent(0x20, "hardware", None, 0x400000, cs=0x33, cpl=3)]
    diff = diff_tss(actual, good, events=ring3)
    assert diff.needs.privilege_change
    assert "CPL 3" in diff.needs.privilege_reason
    assert fields(diff)["tr.selector"].matters


def test_tcg_available_vs_kvm_busy_is_not_a_difference() -> None:
    good = snap(SNAPSHOTS / "lhv-good-amd64.json")
    tr = good.cpu.tr
    assert tr.type == 0x9  # TCG shows the loaded TR as available
    kvm = replace(
        good, cpu=replace(good.cpu, segments={**good.cpu.segments, "tr": replace(tr, flags=0x8B00)})
    )
    diff = diff_tss(good, kvm)
    assert diff.differences == ()
    assert any("TCG shows a loaded TR as available" in n for n in diff.notes)


def test_limit_too_small_for_the_ist_in_use() -> None:
    actual = snap(SESSION / "pic-unremapped.amd64.json")
    good = snap(SNAPSHOTS / "lhv-good-amd64.json")
    tr = actual.cpu.tr
    short = replace(
        actual,
        cpu=replace(actual.cpu, segments={**actual.cpu.segments, "tr": replace(tr, limit=0x2B)}),
    )
    needs = tss_needs(snapshot_tables(short), short.cpu)
    assert not needs.ist  # this firmware uses no IST: a short limit is harmless
    limit = fields(diff_tss(short, good))["tr.limit"]
    assert limit.actual == 0x2B and not limit.matters


def test_i386_against_pebbles() -> None:
    actual = snap(SNAPSHOTS / "lhv-good-i386.json")
    diff = diff_tss(actual, load_reference("pebbles"), reference_name="pebbles")
    by = fields(diff)
    i386 = facts("i386").selectors
    assert by["tr.selector"].reference == 0x08 and by["tr.selector"].actual == i386["TSS"]
    assert not by["tr.selector"].matters
    assert by["tss.ss0"].reference == 0x18 and by["tss.ss0"].actual == i386["KERNEL_DS"]
    assert "writable data segment" in by["tss.ss0"].explanation
    assert diff.mattering == ()
    assert diff.to_json()["reference"] == "pebbles"


def test_amd64_against_pebbles_pairs_fields_across_architectures() -> None:
    actual = snap(SNAPSHOTS / "lhv-good-amd64.json")
    diff = diff_tss(actual, load_reference("pebbles"), reference_name="pebbles")
    by = fields(diff)
    assert by["tss.rsp0"].reference == 0  # Pebbles' ESP0, paired with RSP0
    assert not any(f.startswith("tss.ss") for f in by)
    assert any("SS0..SS2 of the 32-bit reference have no counterpart" in n for n in diff.notes)
    assert any("IST1..IST7 have no counterpart" in n for n in diff.notes)
    data = diff.to_json()
    assert set(data) >= {"reference", "differences"}
    assert set(data["differences"][0]) == {"field", "reference", "actual", "explanation", "matters"}


def test_vector_ranges() -> None:
    assert vector_ranges([0x20]) == "0x20"
    assert vector_ranges([0, 1, 2, 3, 8, 0x20, 0x21]) == "0x00-0x03, 0x08, 0x20-0x21"
