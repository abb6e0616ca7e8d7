"""Snapshot JSON: real captured fixtures, round trips, and rejection of bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lhvdbg.errors import MemoryNotCaptured, SnapshotError
from lhvdbg.state.snapshot import (
    MemoryRegion,
    Provenance,
    Snapshot,
    load_snapshot,
    loads_snapshot,
    save_snapshot,
    snapshot_from_dict,
    snapshot_to_dict,
)
from lhvdbg.x86.cpustate import (
    SEGMENT_NAMES,
    CpuState,
    LapicState,
    PicChip,
    PicState,
    SegmentRegister,
    TableRegister,
)
from lhvdbg.x86.hmp import parse_info_lapic, parse_info_pic, parse_info_registers

SNAPSHOTS = Path(__file__).resolve().parent.parent / "fixtures" / "snapshots"
BAD = SNAPSHOTS / "bad"


def test_long_mode_fixture_loads_with_real_values() -> None:
    snap = load_snapshot(SNAPSHOTS / "long-tcg.json")
    assert snap.arch == "amd64"
    assert snap.cpu.mode == "long"
    assert snap.cpu.tr == SegmentRegister(0x20, 0x1001C0, 0x67, 0x8900)
    assert snap.cpu.gdtr == TableRegister(0x100170, 0x2F)
    assert snap.provenance.qemu_version == "7.2.22"
    assert snap.provenance.accel == "tcg"
    assert snap.pic is not None and snap.pic.master.irq_base == 0x20
    assert snap.lapic is not None and snap.lapic.lvt_timer == 0x20022
    # the 64-bit code descriptor at GDT 0x18, as the capture kernel declares it
    assert snap.read(0x100170 + 0x18, 8) == bytes.fromhex("ffff0000009aaf00")
    # the TSS descriptor at 0x20 got its base patched to the TSS address 0x1001c0
    assert snap.read(0x100170 + 0x20, 8) == bytes.fromhex("6700c001108b0000")
    assert len(snap.region("idt").data) == 4096  # type: ignore[union-attr]


def test_fixture_agrees_with_its_raw_hmp_text() -> None:
    snap = load_snapshot(SNAPSHOTS / "protected-i386.json")
    assert snap.arch == "i386"
    assert snap.cpu == parse_info_registers(snap.hmp["info registers"])
    assert snap.pic == parse_info_pic(snap.hmp["info pic"])
    assert snap.lapic == parse_info_lapic(snap.hmp["info lapic"])


@pytest.mark.parametrize(
    "name", ["long-tcg.json", "long-tr-never-loaded.json", "protected-i386.json"]
)
def test_fixture_round_trips_byte_for_byte(name: str, tmp_path: Path) -> None:
    snap = load_snapshot(SNAPSHOTS / name)
    out = tmp_path / "again.json"
    save_snapshot(snap, out)
    assert out.read_text() == (SNAPSHOTS / name).read_text()
    assert load_snapshot(out) == snap


def test_read_outside_captured_memory() -> None:
    snap = load_snapshot(SNAPSHOTS / "long-tr-never-loaded.json")
    assert snap.region("tss") is None  # TR never loaded: nothing to capture
    with pytest.raises(MemoryNotCaptured):
        snap.read(0x1001C0, 0x68)


def test_unknown_keys_are_ignored() -> None:
    data = json.loads((SNAPSHOTS / "long-tcg.json").read_text())
    data["future_field"] = {"x": 1}
    data["cpu"]["dr7"] = "0x400"
    assert snapshot_from_dict(data, "x.json") == load_snapshot(SNAPSHOTS / "long-tcg.json")


def test_optional_parts_may_be_absent() -> None:
    data = json.loads((SNAPSHOTS / "long-tcg.json").read_text())
    for key in ("pic", "lapic", "symbols", "hmp"):
        del data[key]
    del data["provenance"]["qemu_version"]
    snap = snapshot_from_dict(data, "x.json")
    assert snap.pic is None and snap.lapic is None
    assert snap.symbols == {} and snap.hmp == {}
    assert snap.provenance.qemu_version is None


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("truncated.json", r"truncated\.json: not valid JSON \(line \d+ column \d+"),
        ("empty.json", r"empty\.json: not valid JSON"),
        ("not-an-object.json", r"not-an-object\.json: not a JSON object"),
        ("wrong-version.json", r"format_version: 2 is not supported \(this lhvdbg reads 1\)"),
        ("no-version.json", r"no-version\.json: format_version: missing"),
        ("bad-arch.json", r"arch: \"arm64\" is not one of amd64, i386"),
        ("tr-base-not-hex.json", r"tr-base-not-hex\.json: cpu\.segments\.tr\.base: not a hex"),
        ("missing-cr3.json", r"missing-cr3\.json: cpu\.cr3: missing"),
        ("cpl-string.json", r"cpu\.cpl: not an integer"),
        ("odd-memory.json", r"memory\[0\]\.data: not an even number of hex digits"),
        ("pic-irq-base-garbage.json", r"pic\.master\.irq_base: not a hex string: \"0x2g\""),
    ],
)
def test_bad_files_give_one_line(name: str, message: str) -> None:
    with pytest.raises(SnapshotError, match=message) as info:
        load_snapshot(BAD / name)
    assert "\n" not in str(info.value)
    assert str(BAD / name) in str(info.value)


def test_missing_file() -> None:
    with pytest.raises(SnapshotError, match=r"snapshot not found: .*nope\.json"):
        load_snapshot("/nonexistent/nope.json")


def test_not_utf8() -> None:
    with pytest.raises(SnapshotError, match="not valid JSON"):
        loads_snapshot(b"\xff\xfe{", "bin.json")


def test_save_to_unwritable_place(tmp_path: Path) -> None:
    snap = load_snapshot(SNAPSHOTS / "long-tcg.json")
    with pytest.raises(SnapshotError, match="cannot write"):
        save_snapshot(snap, tmp_path / "missing-dir" / "x.json")
    assert list(tmp_path.iterdir()) == []


# --- property: any snapshot survives to_dict -> JSON -> from_dict unchanged ---------------

u64 = st.integers(0, 2**64 - 1)
u32 = st.integers(0, 2**32 - 1)
u16 = st.integers(0, 0xFFFF)
u8 = st.integers(0, 0xFF)
names = st.text("abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=8)
opt_text = st.none() | st.text(max_size=20)

segments = st.builds(SegmentRegister, u16, u64, u32, st.integers(0, 0xFFFFFF))
cpus = st.builds(
    CpuState,
    mode=st.sampled_from(["real", "protected", "long", "compat", "vm86"]),
    ip=u64,
    flags=u32,
    gprs=st.dictionaries(names, u64, max_size=4),
    segments=st.fixed_dictionaries({name: segments for name in SEGMENT_NAMES}),
    gdtr=st.builds(TableRegister, u64, u16),
    idtr=st.builds(TableRegister, u64, u16),
    cr0=u32,
    cr2=u64,
    cr3=u64,
    cr4=u32,
    efer=u64,
    cpl=st.integers(0, 3),
    halted=st.none() | st.booleans(),
)
chips = st.builds(
    PicChip,
    irr=u8,
    imr=u8,
    isr=u8,
    irq_base=u8,
    hprio=st.integers(0, 7),
    init_state=st.none() | st.integers(0, 3),
    extra=st.dictionaries(names, u8, max_size=3),
)
lapics = st.builds(
    LapicState,
    apic_id=u8,
    svr=u32,
    lvt_timer=u32,
    timer_initial=u32,
    timer_current=u32,
    timer_divide=st.integers(0, 0xB),
    isr=st.integers(0, 2**256 - 1),
    irr=st.integers(0, 2**256 - 1),
    tmr=st.integers(0, 2**256 - 1),
    tpr=u8,
    ppr=u8,
    lvt=st.dictionaries(names, u32, max_size=5),
    extra=st.dictionaries(names, u32, max_size=3),
)
snapshots = st.builds(
    Snapshot,
    arch=st.sampled_from(["amd64", "i386"]),
    cpu=cpus,
    memory=st.lists(st.builds(MemoryRegion, u64, st.binary(max_size=64), names), max_size=3).map(
        tuple
    ),
    provenance=st.builds(
        Provenance,
        source=st.sampled_from(["qemu", "reference", "fixture"]),
        captured_at=st.text(max_size=25),
        qemu_version=opt_text,
        accel=st.none() | st.sampled_from(["tcg", "kvm"]),
        kernel_path=opt_text,
        kernel_sha256=opt_text,
        stop_reason=opt_text,
        note=st.text(max_size=40),
        scope=st.lists(names, max_size=3).map(tuple),
    ),
    pic=st.none() | st.builds(PicState, chips, chips),
    lapic=st.none() | lapics,
    symbols=st.dictionaries(names, u64, max_size=4),
    hmp=st.dictionaries(st.sampled_from(["info registers", "info pic"]), st.text(max_size=40)),
)


@settings(max_examples=100, deadline=None)
@given(snapshots)
def test_round_trip_property(snap: Snapshot) -> None:
    text = json.dumps(snapshot_to_dict(snap))
    assert snapshot_from_dict(json.loads(text), "prop.json") == snap
