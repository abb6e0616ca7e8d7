"""The firmware's facts read from its DWARF and Makefile, checked against the hardware's
rules and against lhvdbg's own declarations (the SDM's TSS, the debug-exit device)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from lhvdbg.errors import KernelError
from lhvdbg.machine.launch import DEBUG_EXIT_PORT
from lhvdbg.state.firmware_facts import (
    FirmwareFacts,
    firmware_facts,
    firmware_variants,
    parse_variants,
)
from lhvdbg.x86.layout import Layout
from lhvdbg.x86.tss import tss32_layout, tss64_layout
from tests.firmware_facts import ARCH_VARIANTS, ARCHES, FIRMWARE, ROOT, VARIANTS, elf_path, facts
from tests.unit.test_elf import build_elf, multiboot


def test_the_makefile_names_both_archs_and_good_first() -> None:
    assert ARCHES == ("amd64", "i386")
    for variants in VARIANTS.values():
        assert variants[0] == "good" and len(set(variants)) == len(variants) >= 5
    assert ("amd64", "ist-without-tss") in ARCH_VARIANTS
    assert ("i386", "ist-without-tss") not in ARCH_VARIANTS  # no IST in legacy mode


def test_every_variant_header_is_built_and_every_built_variant_has_a_header() -> None:
    headers = {p.stem for p in (FIRMWARE / "variants").glob("*.h")}
    assert headers == {v for variants in VARIANTS.values() for v in variants}


def test_parse_variants_reads_the_assignments_only() -> None:
    text = "# VARIANTS_x := no\nVARIANTS_amd64 := good a-b\nVARIANTS_i386 = good\nX := 1\n"
    assert parse_variants(text) == {"amd64": ("good", "a-b"), "i386": ("good",)}


def test_a_makefile_without_variants_is_a_kernel_error(tmp_path: Path) -> None:
    (tmp_path / "Makefile").write_text("all:\n\ttrue\n")
    with pytest.raises(KernelError, match="no VARIANTS_<arch> line"):
        firmware_variants(tmp_path / "Makefile")


def test_an_image_without_dwarf_is_a_kernel_error(tmp_path: Path) -> None:
    path = tmp_path / "k.elf"
    path.write_bytes(build_elf(multiboot() + bytes(16)))
    with pytest.raises(KernelError, match="no DWARF"):
        firmware_facts(path)


@pytest.mark.parametrize("arch", ARCHES)
def test_selectors_follow_the_selector_format(arch: str) -> None:
    """index * 8 | TI 0 | RPL: kernel selectors RPL 0, user selectors RPL 3 (SDM §3.4.2)."""
    sel = facts(arch).selectors
    assert sel["NULL"] == 0
    for name, value in sel.items():
        assert value & 4 == 0, name  # GDT, not LDT
        assert value & 3 == (3 if name.startswith("USER") else 0), name
    assert len(set(sel.values())) == len(sel)
    assert {"KERNEL_CS", "KERNEL_DS", "TSS", "USER_CS", "USER_DS"} <= set(sel)


@pytest.mark.parametrize("arch", ARCHES)
def test_pic_bases_are_icw2_vectors_above_the_exceptions(arch: str) -> None:
    master, slave = facts(arch).pic_bases
    assert master % 8 == 0 and slave % 8 == 0  # ICW2 bits 0-2 are the IRQ number
    assert master >= 32 and slave >= 32  # vectors 0-31 are the CPU's exceptions
    assert slave == master + 8
    vectors = facts(arch).vectors
    assert vectors["KEYBOARD"] == master + 1 and vectors["IRQ7"] == master + 7
    assert vectors["DOUBLE_FAULT"] == 8


@pytest.mark.parametrize("arch", ARCHES)
def test_the_exit_port_is_the_one_lhvdbg_gives_isa_debug_exit(arch: str) -> None:
    assert facts(arch).exit_port == DEBUG_EXIT_PORT
    codes = facts(arch).exit_codes
    assert facts(arch).exit_status("OK") == codes["OK"] * 2 + 1
    assert set(codes) == {"OK", "DOUBLE_FAULT", "PANIC"}


def _offset(layout: Layout, field: str) -> int:
    return layout.field(field).pieces[0][0] // 8


@pytest.mark.parametrize(
    ("arch", "layout", "pairs"),
    [
        (
            "amd64",
            tss64_layout(),
            {
                "rsp0": "rsp0",
                "rsp1": "rsp1",
                "rsp2": "rsp2",
                "ist": "ist1",
                "iomap_base": "io_map_base",
            },
        ),
        (
            "i386",
            tss32_layout(),
            {
                "esp0": "esp0",
                "ss0": "ss0",
                "cr3": "cr3",
                "eip": "eip",
                "ldt": "ldt",
                "iomap_base": "io_map_base",
            },
        ),
    ],
)
def test_the_firmware_tss_is_the_sdm_tss(arch: str, layout: Layout, pairs: dict[str, str]) -> None:
    """struct tss as gcc laid it out (DWARF) against lhvdbg's layout of the SDM figure."""
    got = facts(arch)
    assert got.tss_size == layout.size_bytes == 0x68
    for member, field in pairs.items():
        assert got.tss_offsets[member] == _offset(layout, field), member


def test_every_image_of_an_arch_declares_the_same_numbers(firmware_built: Path) -> None:
    for arch, variant in ARCH_VARIANTS:
        other = firmware_facts(elf_path(arch, variant))
        base = facts(arch)
        assert (other.selectors, other.vectors, other.ports) == (
            base.selectors,
            base.vectors,
            base.ports,
        ), variant


def test_the_docs_variant_table_is_the_makefile_s() -> None:
    text = (ROOT / "docs" / "firmware.md").read_text()
    section = text[text.index("## Variants") :]
    rows = re.findall(r"^\| `([\w-]+)` \(([\w, ]+)\) \|", section, re.MULTILINE)
    from_docs = {(arch, v) for v, archs in rows for arch in archs.split(", ")}
    assert from_docs == set(ARCH_VARIANTS)


# enumerator prefix -> the FirmwareFacts mapping that holds it
_KINDS = {
    "LHV_SEL_": "selectors",
    "LHV_VEC_": "vectors",
    "LHV_PORT_": "ports",
    "LHV_EXIT_": "exit_codes",
}


def _fact(arch: str, name: str) -> int:
    for prefix, mapping in _KINDS.items():
        if name.startswith(prefix):
            values: dict[str, int] = dict(getattr(facts(arch), mapping))
            return values[name.removeprefix(prefix)]
    raise KeyError(name)


SCENARIOS = sorted((ROOT / "scenarios").glob("*.toml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_numbers_marked_firmware_are_the_firmware_s(path: Path) -> None:
    """``equals = 0x20  # firmware: LHV_VEC_PIT``: the number on the line is the value of
    that enumerator in the DWARF of the scenario's arch; the variant is a Makefile one."""
    text = path.read_text()
    arch = re.search(r'^arch = "(\w+)"', text, re.MULTILINE)
    variant = re.search(r'^variant = "([\w-]+)"', text, re.MULTILINE)
    assert arch is not None and variant is not None
    assert (arch[1], variant[1]) in ARCH_VARIANTS
    for line in text.splitlines():
        code, _, comment = line.partition("#")
        marked = re.fullmatch(r"\s*firmware: (\w+)\s*", comment)
        if marked is None:
            continue
        numbers = {int(n, 0) for n in re.findall(r"\b0x[0-9a-fA-F]+\b|\b\d+\b", code)}
        assert _fact(arch[1], marked[1]) in numbers, line


def test_the_docs_numbers_table_is_the_dwarf_s() -> None:
    from tests.firmware_facts import numbers_table

    assert numbers_table() in (ROOT / "docs" / "firmware.md").read_text()


# What the diagnosis rules say of LHV-good: phrase -> the firmware's number(s) it quotes.
def _amd64() -> FirmwareFacts:
    return facts("amd64")


_RULE_PHRASES: list[tuple[str, tuple[Callable[[], int], ...]]] = [
    (r"ltr (0x\w+)", (lambda: _amd64().selectors["TSS"],)),
    (r"LAPIC timer uses vector (0x\w+)", (lambda: _amd64().vectors["LAPIC_TIMER"],)),
    (
        r"iretq to CS (0x\w+) / SS (0x\w+)",
        (lambda: _amd64().selectors["KERNEL_CS"], lambda: _amd64().selectors["KERNEL_DS"]),
    ),
    (r"no IRQ below vector (0x\w+)", (lambda: _amd64().vectors["PIT"],)),
    (r"vector (0x\w+) \(spurious IRQ7\)", (lambda: _amd64().vectors["IRQ7"],)),
    (r"PIT on the remapped PIC \(vector (0x\w+)", (lambda: _amd64().vectors["PIT"],)),
    (r"TSS descriptor has limit (0x\w+)", (lambda: _amd64().tss_size - 1,)),
]
_ARCHITECTURAL = {"0xE"}  # the interrupt-gate type (SDM Table 3-2), not the firmware's


def _rule_strings() -> list[str]:
    strings = []
    for path in sorted((ROOT / "lhvdbg" / "diagnose").rglob("*.py")):
        strings += re.findall(r'"(LHV[^"]*)"', path.read_text())
    return strings


def test_what_the_rules_say_of_lhv_good_is_the_firmware_s() -> None:
    """Each number in a rule's "LHV..." text is the one the firmware declares (or an
    architectural constant); a new such number needs a phrase here."""
    strings = _rule_strings()
    assert len(strings) >= 10
    unchecked = []
    for text in strings:
        checked = set(_ARCHITECTURAL)
        for pattern, values in _RULE_PHRASES:
            found = re.search(pattern, text)
            if found is None:
                continue
            for quoted, value in zip(found.groups(), values, strict=True):
                assert int(quoted, 16) == value(), text
                checked.add(quoted)
        unchecked += [n for n in re.findall(r"0x[0-9a-fA-F]+", text) if n not in checked]
    assert unchecked == []
