"""Snapshot JSON: real captured fixtures, round trips, and rejection of bad files."""

from __future__ import annotations

import json
import re
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


def _hmp_words(text: str) -> dict[str, int]:
    """``NAME=hex`` words and segment lines of QEMU's ``info registers``, read with plain
    regular expressions (not lhvdbg's parser, which made the fixture's structured part)."""
    words = {k: int(v, 16) for k, v in re.findall(r"\b([A-Z][A-Z0-9]*)=([0-9a-f]+)\b", text)}
    for name, sel, base, limit, flags in re.findall(
        r"^(\w{2,3})\s*=([0-9a-f]{4}) ([0-9a-f]+) ([0-9a-f]+) ([0-9a-f]+)", text, re.MULTILINE
    ):
        for part, value in (("sel", sel), ("base", base), ("limit", limit), ("flags", flags)):
            words[f"{name}.{part}"] = int(value, 16)
    for name, base, limit in re.findall(r"^([GI]DT)=\s+([0-9a-f]+) ([0-9a-f]+)", text, re.M):
        words[f"{name}.base"], words[f"{name}.limit"] = int(base, 16), int(limit, 16)
    return words


def test_fixture_agrees_with_its_raw_hmp_text() -> None:
    """The structured JSON of the fixture against its raw HMP text, each read on its own
    (json for one, regular expressions for the other): neither goes through lhvdbg."""
    data = json.loads((SNAPSHOTS / "protected-i386.json").read_text())
    raw, cpu = _hmp_words(data["hmp"]["info registers"]), data["cpu"]
    assert int(cpu["ip"], 16) == raw["EIP"] and int(cpu["flags"], 16) == raw["EFL"]
    for reg in ("eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp"):
        assert int(cpu["gprs"][reg], 16) == raw[reg.upper()], reg
    for reg in ("cr0", "cr2", "cr3", "cr4", "efer"):
        assert int(cpu[reg], 16) == raw[reg.upper()], reg
    for seg, line in (("cs", "CS"), ("ss", "SS"), ("ds", "DS"), ("tr", "TR"), ("ldtr", "LDT")):
        got = cpu["segments"][seg]
        assert [int(got[k], 16) for k in ("selector", "base", "limit", "flags")] == [
            raw[f"{line}.{k}"] for k in ("sel", "base", "limit", "flags")
        ], seg
    for table in ("gdtr", "idtr"):
        key = table[:3].upper()
        assert (int(cpu[table]["base"], 16), int(cpu[table]["limit"], 16)) == (
            raw[f"{key}.base"],
            raw[f"{key}.limit"],
        )
    pic_text = data["hmp"]["info pic"]
    for chip, line in (("master", "pic0"), ("slave", "pic1")):
        chip_line = re.search(rf"^{line}: (.*)$", pic_text, re.MULTILINE)
        assert chip_line is not None, line
        fields = dict(re.findall(r"(\w+)=([0-9a-f]+)", chip_line[1]))
        for key in ("irr", "imr", "isr", "irq_base"):
            assert int(data["pic"][chip][key], 16) == int(fields[key], 16), (chip, key)
    lapic_text, lapic = data["hmp"]["info lapic"], data["lapic"]

    def group(pattern: str) -> str:
        found = re.search(pattern, lapic_text, re.MULTILINE)
        assert found is not None, pattern
        return found[1]

    assert int(lapic["lvt_timer"], 16) == int(group(r"^LVTT\s+(0x\w+)"), 16)
    assert int(lapic["svr"], 16) == int(group(r"^SPIV\s+(0x\w+)"), 16)
    assert int(lapic["timer_initial"], 16) == int(group(r"initial_count = (\d+)"))
    isr = [int(v) for v in group(r"^ISR\s+([\d ]*)$").split()]
    assert int(lapic["isr"], 16) == sum(1 << v for v in isr)


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


def _edited(name: str, edit: object) -> dict[str, object]:
    data: dict[str, object] = json.loads((SNAPSHOTS / name).read_text())
    assert callable(edit)
    edit(data)
    return data


def _set(path: str, value: object) -> object:
    """An edit setting the dotted ``path`` of a snapshot's JSON to ``value``."""

    def edit(data: dict[str, object]) -> None:
        *parents, last = path.split(".")
        node: object = data
        for key in parents:
            assert isinstance(node, list | dict)
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            assert isinstance(node, dict), path
            node[last] = value

    return edit


@pytest.mark.parametrize(
    ("fixture", "path", "value", "message"),
    [
        # the values of the attacker's report: all loaded and rendered with exit 0 before
        (
            "long-tcg.json",
            "cpu.ip",
            hex(2**800 - 1),
            r"cpu\.ip: a 800-bit value does not fit in 64 bits \(the 64-bit address",
        ),
        (
            "long-tcg.json",
            "cpu.gdtr.limit",
            "0xffffffffffffffff",
            r"cpu\.gdtr\.limit: 0xffffffffffffffff does not fit in 16 bits",
        ),
        (
            "long-tcg.json",
            "cpu.idtr.limit",
            "0xffffffff",
            r"cpu\.idtr\.limit: 0xffffffff does not fit in 16 bits",
        ),
        (
            "long-tcg.json",
            "memory.0.address",
            "0xfffffffffffffff0",
            r"memory\[0\]: 0xfffffffffffffff0 \+ 0x[0-9a-f]+ bytes runs past the end of the "
            r"64-bit address space",
        ),
        # the architecture decides the width: 32 bits on i386
        ("lhv-good-i386.json", "cpu.ip", "0x100000000", r"cpu\.ip: 0x100000000 does not fit in 32"),
        ("lhv-good-i386.json", "cpu.gprs.eax", "0x100000000", r"cpu\.gprs\.eax: .* 32 bits"),
        ("long-tcg.json", "cpu.segments.tr.selector", "0x10000", r"tr\.selector: .* 16 bits"),
        ("long-tcg.json", "cpu.segments.cs.limit", "0x100000000", r"cs\.limit: .* 32 bits"),
        ("long-tcg.json", "cpu.efer", "0x10000000000000000", r"cpu\.efer: .* 64 bits"),
        ("long-tcg.json", "cpu.cpl", 4, r"cpu\.cpl: 4 is not 0\.\.3"),
        ("long-tcg.json", "pic.master.imr", "0x100", r"pic\.master\.imr: 0x100 .* 8 bits"),
        ("long-tcg.json", "pic.slave.hprio", 8, r"pic\.slave\.hprio: 8 is not in 0\.\.7"),
        ("long-tcg.json", "lapic.tpr", "0x100", r"lapic\.tpr: 0x100 does not fit in 8 bits"),
        ("long-tcg.json", "lapic.isr", hex(2**256), r"lapic\.isr: .* 256 bits"),
        ("long-tcg.json", "lapic.apic_id", -1, r"lapic\.apic_id: -1 is not in 0\.\."),
    ],
)
def test_out_of_range_fields_are_named(
    fixture: str, path: str, value: object, message: str
) -> None:
    data = _edited(fixture, _set(path, value))
    if path == "cpu.ip" and fixture == "lhv-good-i386.json":  # and a symbol past 4 GiB
        data["symbols"] = {"kernel_main": "0x100000000"}
        with pytest.raises(SnapshotError, match=r"symbols\.kernel_main: .* 32 bits"):
            snapshot_from_dict(_edited(fixture, _set("symbols", data["symbols"])), fixture)
    with pytest.raises(SnapshotError, match=message) as info:
        snapshot_from_dict(data, fixture)
    assert "\n" not in str(info.value) and len(str(info.value)) < 200


def test_widest_values_of_each_field_still_load() -> None:
    edits = [
        _set("cpu.ip", "0xffffffffffffffff"),
        _set("cpu.gdtr.limit", "0xffff"),
        _set("cpu.segments.tr.selector", "0xffff"),
        _set("pic.master.imr", "0xff"),
        _set("lapic.isr", hex(2**256 - 1)),
    ]
    data = json.loads((SNAPSHOTS / "long-tcg.json").read_text())
    for edit in edits:
        assert callable(edit)
        edit(data)
    snap = snapshot_from_dict(data, "widest.json")
    assert snap.cpu.ip == 2**64 - 1 and snap.cpu.gdtr.limit == 0xFFFF
    assert snap.lapic is not None and snap.lapic.isr == 2**256 - 1


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


def _cpus(bits: int) -> st.SearchStrategy[CpuState]:
    """CPU states whose every field fits its width on an architecture of ``bits`` bits."""
    word = st.integers(0, 2**bits - 1)
    segments = st.builds(SegmentRegister, u16, word, u32, st.integers(0, 0xFFFFFF))
    return st.builds(
        CpuState,
        mode=st.sampled_from(["real", "protected", "long", "compat", "vm86"]),
        ip=word,
        flags=u32,
        gprs=st.dictionaries(names.filter(lambda n: not n.startswith("r")), word, max_size=4),
        segments=st.fixed_dictionaries({name: segments for name in SEGMENT_NAMES}),
        gdtr=st.builds(TableRegister, word, u16),
        idtr=st.builds(TableRegister, word, u16),
        cr0=u32,
        cr2=word,
        cr3=word,
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
BITS = {"amd64": 64, "i386": 32}


def _regions(bits: int) -> st.SearchStrategy[MemoryRegion]:
    """Memory regions inside a ``bits``-bit address space (ending at most at its top)."""
    return st.binary(max_size=64).flatmap(
        lambda data: st.builds(
            MemoryRegion, st.integers(0, 2**bits - max(len(data), 1)), st.just(data), names
        )
    )


def _snapshots(arch: str) -> st.SearchStrategy[Snapshot]:
    bits = BITS[arch]
    return st.builds(
        Snapshot,
        arch=st.just(arch),
        cpu=_cpus(bits),
        memory=st.lists(_regions(bits), max_size=3).map(tuple),
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
        symbols=st.dictionaries(names, st.integers(0, 2**bits - 1), max_size=4),
        hmp=st.dictionaries(st.sampled_from(["info registers", "info pic"]), st.text(max_size=40)),
    )


snapshots = st.sampled_from(sorted(BITS)).flatmap(_snapshots)


@settings(max_examples=100, deadline=None)
@given(snapshots)
def test_round_trip_property(snap: Snapshot) -> None:
    text = json.dumps(snapshot_to_dict(snap))
    assert snapshot_from_dict(json.loads(text), "prop.json") == snap
