"""The generic layout engine: split fields, enums, partial decode, encode, diff, properties."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lhvdbg.errors import DecodeError, LhvdbgError
from lhvdbg.x86.catalog import all_layouts
from lhvdbg.x86.layout import Field, Layout, bit, bits, describe_enum, diff, normalize_mode

LAYOUTS = all_layouts()

TOY = Layout(
    "toy",
    16,
    (
        Field("split", ((0, 3), (12, 15)), "low nibble then high nibble"),
        Field("kind", ((4, 5),), "a kind", enum={0: "zero", 1: "one"}),
        bit("flag", 6, "a flag"),
        bits("addr", 8, 11, "an aligned address", shift=8),
    ),
    "A toy layout for the engine tests.",
)


def test_split_field_concatenates_pieces_lsb_first() -> None:
    d = TOY.decode(0xA00B)  # bits 0-3 = 0xB, bits 12-15 = 0xA
    assert d.split == 0xAB
    assert TOY.encode(split=0xAB) == 0xA00B


def test_shifted_field_decodes_to_the_address_itself() -> None:
    d = TOY.decode(0x0300)
    assert d.addr == 0x300
    assert TOY.encode(addr=0x300) == 0x0300
    with pytest.raises(DecodeError, match="does not fit field addr"):
        TOY.encode(addr=0x301)  # not aligned


def test_enum_names_with_unknown_fallback() -> None:
    assert TOY.decode(0x10).name_of("kind") == "one"
    assert TOY.decode(0x30).name_of("kind") == "unknown (0x3)"
    assert TOY.decode(0).name_of("flag") is None
    assert describe_enum({}, 0x1F) == "unknown (0x1f)"


def test_to_dict_has_ints_and_name_keys() -> None:
    assert TOY.decode(0x2050 | 0x40).to_dict() == {
        "split": 0x20,
        "kind": 1,
        "kind_name": "one",
        "flag": 1,
        "addr": 0,
    }


def test_bytes_are_little_endian_and_sized() -> None:
    assert TOY.decode(b"\x0b\xa0").split == 0xAB
    with pytest.raises(DecodeError, match="needs 2 bytes, got 3"):
        TOY.decode(b"\x00\x00\x00")
    with pytest.raises(DecodeError, match="does not fit toy"):
        TOY.decode(0x10000)
    with pytest.raises(DecodeError):
        TOY.decode(-1)


def test_partial_decode_lists_missing_fields() -> None:
    d = TOY.decode(b"\x5b", partial=True)
    assert d.missing == ("split", "addr")
    assert d.kind == 1 and d.flag == 1
    assert d.get("split") is None
    with pytest.raises(AttributeError):
        _ = d.split


def test_encode_rejects_unknown_and_oversized_fields() -> None:
    with pytest.raises(DecodeError, match="no field 'nope'"):
        TOY.encode(nope=1)
    with pytest.raises(DecodeError, match="does not fit field kind"):
        TOY.encode(kind=4)


def test_unknown_bits_and_replace() -> None:
    d = TOY.decode(0x0080)  # bit 7 is declared by nobody
    assert d.unknown_bits == 0x80
    assert d.replace(flag=1).raw == 0x00C0


def test_diff_reports_changed_fields_with_text() -> None:
    a, b = TOY.decode(0x0010), TOY.decode(0x0050)
    changes = diff(a, b)
    assert [(c.name, c.old, c.new) for c in changes] == [("flag", 0, 1)]
    assert diff(a, a) == []


def test_bad_layout_declarations_are_refused() -> None:
    with pytest.raises(ValueError, match="overlaps"):
        Layout("bad", 8, (bits("a", 0, 3, ""), bits("b", 3, 4, "")), "")
    with pytest.raises(ValueError, match="outside"):
        Layout("bad", 8, (bits("a", 0, 8, ""),), "")


def test_normalize_mode() -> None:
    assert normalize_mode("long") == "ia32e"
    assert normalize_mode("compat") == "ia32e"
    assert normalize_mode("protected") == "legacy"
    with pytest.raises(DecodeError, match="unknown CPU mode"):
        normalize_mode("smm")


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: f"{lay.name}-{lay.mode}")
def test_every_layout_cites_its_source(layout: Layout) -> None:
    """An Intel SDM volume and section, or the data sheet of a chip the SDM does not
    describe (I/O APIC, 8259A, 8254, the chipset's reset register)."""
    sdm = "Intel SDM Vol." in layout.doc and "§" in layout.doc
    assert sdm or re.search(r"Intel [\w/ ]+ ?data ?sheets?\b", layout.doc), layout.doc


def test_the_catalogue_holds_the_apic_and_ioapic_layouts_once_each() -> None:
    names = [layout.name for layout in LAYOUTS]
    for name in ("lvt timer", "lvt", "svr", "timer divide", "ioapic redirection entry"):
        assert names.count(name) == 1, name
    assert len({id(layout) for layout in LAYOUTS}) == len(LAYOUTS) >= 38


def _builds_a_layout(func: ast.FunctionDef) -> bool:
    return any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Layout"
        for node in ast.walk(func)
    )


def _is_catalogued(func: ast.FunctionDef) -> bool:
    return any(
        isinstance(d, ast.Call) and isinstance(d.func, ast.Name) and d.func.id == "catalogued"
        for d in func.decorator_list
    )


def test_every_function_that_builds_a_layout_is_catalogued() -> None:
    """A new layout factory anywhere in lhvdbg/x86 without @catalogued fails here."""
    missing = []
    factories = 0
    for path in sorted((ROOT / "lhvdbg" / "x86").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and _builds_a_layout(node):
                factories += 1
                if not _is_catalogued(node):
                    missing.append(f"{path.name}:{node.name}")
    assert not missing
    assert factories >= 21  # it sees them: apic 4, ioapic 1, errorcodes 4, registers 5, ...


def test_the_decorator_enters_a_factory_where_it_is_declared() -> None:
    from lhvdbg.x86 import layout as engine

    before = len(engine.catalogued_layouts())

    @engine.catalogued(("a",), ("b",))
    def toy(tag: str) -> Layout:
        return Layout(f"toy {tag}", 8, (bits("v", 0, 7, "value"),), "Toy (Intel SDM Vol. 0 §0).")

    try:
        names = [layout.name for layout in engine.catalogued_layouts()]
        assert len(names) == before + 2 and names[-2:] == ["toy a", "toy b"]
    finally:
        engine._CATALOGUE.pop()
    assert len(engine.catalogued_layouts()) == before


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(LAYOUTS), st.data())
def test_round_trip_encode_decode(layout: Layout, data: st.DataObject) -> None:
    values = {
        f.name: data.draw(st.integers(0, (1 << f.width) - 1)) << f.shift for f in layout.fields
    }
    raw = layout.encode(**values)
    decoded = layout.decode(layout.to_bytes(raw))
    assert dict(decoded.values) == values
    assert decoded.unknown_bits == 0
    assert layout.encode(**decoded.values) == raw


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(LAYOUTS), st.binary(max_size=120), st.booleans())
def test_random_bytes_never_raise_foreign_errors(
    layout: Layout, data: bytes, partial: bool
) -> None:
    try:
        d = layout.decode(data, partial=partial)
    except LhvdbgError:
        return
    for name in d.values:
        d.describe(name)
        d.name_of(name)
    d.to_dict()


ROOT = Path(__file__).resolve().parent.parent.parent


def test_docs_catalogue_lists_every_layout() -> None:
    text = (ROOT / "docs" / "layouts.md").read_text()
    for layout in LAYOUTS:
        assert layout.doc in text, layout.doc


_MINE = (
    "layout",
    "segments",
    "tss",
    "tables",
    "checks",
    "paging",
    "registers",
    "errorcodes",
    "catalog",
    "describe",
    "rawinput",
)


_BASE = ("lhvdbg.errors", "lhvdbg.files")  # every layer may import these two


@pytest.mark.parametrize("module", _MINE)
def test_x86_modules_import_only_stdlib_errors_and_x86(module: str) -> None:
    tree = ast.parse((ROOT / "lhvdbg" / "x86" / f"{module}.py").read_text())
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            if top == "lhvdbg":
                assert name in _BASE or name.startswith("lhvdbg.x86"), name
            else:
                assert top in sys.stdlib_module_names, name
