"""References: the Pebbles snapshot built from its source, and the LHV ones when captured."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lhvdbg.errors import SnapshotError
from lhvdbg.state.references import REFERENCE_NAMES, load_reference, reference_path
from lhvdbg.x86.apic import lvt_timer_layout
from lhvdbg.x86.cpustate import SegmentRegister, TableRegister
from lhvdbg.x86.segments import gate_layout, segment_descriptor_layout
from lhvdbg.x86.tss import tss32_layout
from tests.firmware_facts import ARCHES, facts

ROOT = Path(__file__).resolve().parent.parent.parent


def test_pebbles_registers() -> None:
    ref = load_reference("pebbles")
    assert ref.arch == "i386"
    assert ref.cpu.mode == "protected"
    assert ref.provenance.source == "reference"
    # the TR line of background.md: TR =0008 00100950 00000067 00008b00 DPL=0 TSS32-busy
    assert ref.cpu.tr == SegmentRegister(0x08, 0x100950, 0x67, 0x8B00)
    assert ref.cpu.gdtr == TableRegister(0x100900, 0x4F)
    assert ref.cpu.idtr == TableRegister(0x100100, 0x7FF)
    assert ref.cpu.segments["cs"] == SegmentRegister(0x10, 0, 0xFFFFFFFF, 0xCF9B00)
    assert ref.cpu.segments["ss"].selector == 0x18
    assert ref.cpu.cr0 & 1
    assert ref.pic is not None
    assert (ref.pic.master.irq_base, ref.pic.slave.irq_base) == (0x20, 0x28)
    assert ref.lapic is None
    assert "410kern/boot/head.S" in ref.provenance.note
    assert "410kern/x86/seg.h" in ref.provenance.note
    assert "cpu.segments.tr" in ref.provenance.scope


def test_pebbles_tables_decode_through_the_layouts() -> None:
    ref = load_reference("pebbles")
    seg = segment_descriptor_layout("protected")
    assert ref.read(0x100908, 8) == bytes.fromhex("6700500910 8b0000".replace(" ", ""))
    tss_desc = seg.decode(ref.read(0x100908, 8))
    assert (tss_desc.base, tss_desc.limit, tss_desc.type, tss_desc.s) == (0x100950, 0x67, 0xB, 0)
    user_cs = seg.decode(ref.read(0x100900 + 0x20, 8))
    assert (user_cs.dpl, user_cs.type & 0x8) == (3, 0x8)
    gate = gate_layout("protected").decode(ref.read(0x100100 + 8 * 8, 8))
    assert (gate.offset, gate.selector, gate.type, gate.present) == (0x1009B8, 0x10, 0xE, 1)
    assert ref.read(0x100100 + 8 * 9, 8) == bytes(8)  # only vector 8 is preset
    tss = tss32_layout().decode(ref.read(0x100950, 0x68))
    assert (tss.ss0, tss.io_map_base, tss.esp0) == (0x18, 0x68, 0)
    # the raw words of head.S, for good measure
    assert ref.read(0x100950 + 8, 2) == b"\x18\x00"
    assert ref.read(0x100950 + 102, 2) == b"\x68\x00"


def test_pebbles_json_is_what_the_script_builds(tmp_path: Path) -> None:
    out = tmp_path / "pebbles.json"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_pebbles_reference.py"), str(out)],
        check=True,
        capture_output=True,
        cwd=ROOT,
        timeout=60,
    )
    assert out.read_text() == reference_path("pebbles").read_text()


@pytest.mark.parametrize(
    ("arch", "mode", "tss_layout"), [("amd64", "long", "tss64"), ("i386", "protected", "tss32")]
)
def test_lhv_references(arch: str, mode: str, tss_layout: str) -> None:
    """The good firmware's state as captured, against the numbers the firmware declares."""
    from lhvdbg.state.system import tables_from_reader

    got = facts(arch)
    ref = load_reference(f"lhv-{arch}")
    assert ref.provenance.source == "reference"
    assert ref.provenance.qemu_version == "7.2.22"
    assert "lhvdbg snapshot --variant good" in ref.provenance.note
    assert "cpu.gprs" not in ref.provenance.scope and "tss" in ref.provenance.scope
    assert ref.cpu.mode == mode
    assert (ref.cpu.tr.selector, ref.cpu.tr.limit) == (got.selectors["TSS"], got.tss_size - 1)
    assert ref.cpu.segments["cs"].selector == got.selectors["KERNEL_CS"]
    assert ref.pic is not None
    assert (ref.pic.master.irq_base, ref.pic.slave.irq_base) == got.pic_bases
    assert ref.lapic is not None
    timer = lvt_timer_layout().decode(ref.lapic.lvt_timer)
    assert (timer.vector, timer.name_of("mode"), timer.masked) == (
        got.vectors["LAPIC_TIMER"],
        "periodic",
        0,
    )
    tables = tables_from_reader(ref.cpu, ref.read)
    assert tables.tss is not None and tables.tss.layout.name == tss_layout
    assert tables.idt is not None and len(tables.idt.present) == 256  # LHV: 256 gates
    assert tables.tr_entry is not None and tables.tr_entry.decoded is not None
    assert tables.tr_entry.decoded.values["type"] == 0xB  # busy after ltr


@pytest.mark.parametrize("arch", ARCHES)
def test_lhv_reference_is_of_the_current_good_build(arch: str, firmware_built: Path) -> None:
    """Its GDT, IDT and TSS are where the good build's symbols put them: a firmware whose
    layout moved needs a new capture (scripts/make_lhv_reference.py), or every diff
    against the reference shows the move as differences."""
    from lhvdbg.state.elf import inspect_kernel

    elf = inspect_kernel(firmware_built / arch / "lhv-good.elf")
    ref = load_reference(f"lhv-{arch}")
    places = (ref.cpu.gdtr.base, ref.cpu.idtr.base, ref.cpu.tr.base)
    assert places == tuple(elf.address_of(n) for n in ("gdt", "idt", "tss")), (
        f"the lhv-{arch} reference is of an older build: run scripts/make_lhv_reference.py"
    )
    assert ref.provenance.kernel_path == f"firmware/build/{arch}/lhv-good.elf"


def test_missing_reference_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lhvdbg.state.references as references

    (tmp_path / "references").mkdir()
    monkeypatch.setattr(references.resources, "files", lambda package: tmp_path)
    with pytest.raises(SnapshotError) as info:
        load_reference("lhv-amd64")
    assert str(info.value) == (
        "reference lhv-amd64 is not available: lhvdbg/state/references/lhv-amd64.json is "
        "missing (run scripts/make_lhv_reference.py amd64)"
    )


def test_reference_by_path() -> None:
    path = ROOT / "tests" / "fixtures" / "snapshots" / "long-tcg.json"
    assert load_reference(str(path)).cpu.mode == "long"


def test_unknown_name() -> None:
    with pytest.raises(SnapshotError, match="not a snapshot file nor a reference name"):
        load_reference("pebles")
    with pytest.raises(SnapshotError, match="unknown reference"):
        reference_path("pebles")


def test_every_name_is_a_shipped_file_and_every_shipped_file_a_name() -> None:
    shipped = {p.stem for p in (ROOT / "lhvdbg" / "state" / "references").glob("*.json")}
    assert set(REFERENCE_NAMES) == shipped
    for name in REFERENCE_NAMES:
        assert reference_path(name).is_file()
        assert load_reference(name).provenance.source == "reference"


def test_there_is_an_lhv_reference_for_each_firmware_arch() -> None:
    """One captured good run per architecture of firmware/Makefile, of that arch."""
    lhv = {n.removeprefix("lhv-") for n in REFERENCE_NAMES if n.startswith("lhv-")}
    assert lhv == set(ARCHES)
    for arch in ARCHES:
        assert load_reference(f"lhv-{arch}").arch == arch
