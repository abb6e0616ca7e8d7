"""Field paths and assertion operators, on a facts dict shaped like a real capture."""

from __future__ import annotations

import pytest

from lhvdbg.scenario.assertions import check, show_value
from lhvdbg.scenario.model import Expectation
from lhvdbg.scenario.paths import Missing, format_keys, parse_path, resolve

FACTS: dict[str, object] = {
    "tr": {"selector": 0, "base": 0, "limit": 0xFFFF, "flags": 0x8B00},
    "idt": {0x08: {"present": True, "type": 0xE}, 0x20: {"present": False}},
    "gdt": {0x20: {"type": 0xB, "system": True}},
    "pic": {"master": {"irq_base": 0x08, "imr": 0xFE}, "slave": {"irq_base": 0x70}},
    "outcome": "double-fault",
    "diagnosis": [{"id": "pic-unremapped"}, {"id": "tr-null"}],
    "serial": "LHV amd64\nsti\n",
    "lapic": None,
    "ip": 0x100120,
    "events": [
        {"vector": 0x20, "source": "hardware", "error_code": None},
        {"vector": 0x0D, "source": "exception", "error_code": 0x10},
    ],
}


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        ("tr.selector", ("tr", "selector")),
        ("idt[0x20].present", ("idt", 0x20, "present")),
        ("diagnosis[-1].id", ("diagnosis", -1, "id")),
        ('results["idt 8"].gate', ("results", "idt 8", "gate")),
        ("a[ 10 ][0b11]", ("a", 10, 3)),
        ("lhv-good.x_y", ("lhv-good", "x_y")),
    ],
)
def test_parse_path(text: str, keys: tuple[object, ...]) -> None:
    assert parse_path(text) == keys


@pytest.mark.parametrize("text", ["", ".tr", "tr.", "tr..a", "[1]", "tr[x]", "tr[1", "a b", "a]"])
def test_parse_path_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="bad field path"):
        parse_path(text)


def test_format_keys_round_trips() -> None:
    for text in ("idt[0x20].present", "diagnosis[0].id", 'r["a b"].c'):
        assert format_keys(parse_path(text)) == text


def test_resolve_values_and_misses() -> None:
    assert resolve(FACTS, "tr.selector") == 0
    assert resolve(FACTS, "idt[0x20].present") is False
    assert resolve(FACTS, "gdt[32].type") == 0xB
    assert resolve(FACTS, "diagnosis[-1].id") == "tr-null"
    assert resolve(FACTS, "TR.Selector") == 0  # names are case-insensitive for lookups
    miss = resolve(FACTS, "idt[0x21].present")
    assert isinstance(miss, Missing)
    assert str(miss) == "idt: no field [0x21] (has 0x8, 0x20)"
    miss = resolve(FACTS, "diagnosis[2].id")
    assert str(miss) == "diagnosis: index 2 out of range (the list has 2 items)"
    assert str(resolve(FACTS, "lapic.svr")) == "lapic: is null, not a table or a list"
    assert str(resolve(FACTS, "diagnosis.id")) == "diagnosis: is a list: use an index, not .id"
    assert str(resolve(FACTS, "ip.low")) == "ip: is int, not a table or a list"


def _check(path: str, op: str, value: object) -> tuple[bool, str]:
    outcome = check(Expectation(path, op, value), FACTS)
    return outcome.passed, outcome.explain()


@pytest.mark.parametrize(
    ("path", "op", "value", "passed"),
    [
        ("pic.master.irq_base", "equals", 8, True),
        ("pic.master.irq_base", "equals", "0x08", True),
        ("pic.master.irq_base", "equals", 0x20, False),
        ("pic.master.irq_base", "not_equals", 0x20, True),
        ("idt[0x08].present", "equals", True, True),
        ("idt[0x08].present", "equals", 1, False),  # booleans equal only booleans
        ("tr.selector", "equals", False, False),
        ("outcome", "equals", "double-fault", True),
        ("outcome", "one_of", ["triple-fault", "double-fault"], True),
        ("outcome", "one_of", ["timeout"], False),
        ("serial", "contains", "sti", True),
        ("serial", "not_contains", "tick", True),
        ("serial", "matches", r"LHV (amd64|i386)", True),
        ("serial", "matches", r"^tick", False),
        ("diagnosis", "length", 2, True),
        ("diagnosis", "contains", {"id": "tr-null"}, True),
        ("diagnosis", "contains", {"id": "0x10"}, False),
        ("idt", "contains", 0x20, True),  # a table contains its keys
        ("events", "contains", {"vector": 0x0D}, True),  # some item has these fields
        ("events", "contains", {"vector": 0x0D, "source": "hardware"}, False),
        ("events", "not_contains", {"vector": 0x0E}, True),
        ("pic", "contains", "slave", True),
        ("tr.limit", "ge", "0xffff", True),
        ("tr.limit", "gt", 0xFFFF, False),
        ("ip", "lt", 0x200000, True),
        ("ip", "le", 0x100000, False),
        ("outcome", "gt", 1, False),  # not a number: fails, no exception
        ("lapic", "exists", True, True),  # present, and null
        ("lapic.svr", "exists", False, True),
        ("idt[0x21]", "exists", True, False),
        ("lapic", "is_null", True, True),
        ("tr", "is_null", False, True),
        ("tr", "is_null", True, False),
        ("lapic.svr", "is_null", True, False),  # missing is not null
        ("idt[0x21].present", "equals", True, False),
    ],
)
def test_operators(path: str, op: str, value: object, passed: bool) -> None:
    assert _check(path, op, value)[0] is passed


def test_explain_names_expected_and_actual() -> None:
    assert _check("pic.master.irq_base", "equals", 0x20) == (
        False,
        "pic.master.irq_base: expected equals 0x20, actual 0x8",
    )
    assert _check("tr.limit", "not_equals", 0xFFFF)[1] == (
        "tr.limit: expected not equals 0xffff, actual 0xffff"
    )
    assert _check("idt[0x21].present", "equals", True)[1] == (
        "idt[0x21].present: expected equals true, actual no value "
        "(idt: no field [0x21] (has 0x8, 0x20))"
    )
    outcome = check(Expectation("outcome", "equals", "ok", message="should boot"), FACTS)
    assert outcome.explain() == 'outcome: expected equals "ok", actual "double-fault" — should boot'


def test_show_value() -> None:
    assert show_value(9) == "9" and show_value(10) == "0xa" and show_value(-3) == "-3"
    assert show_value(None) == "null" and show_value(True) == "true"
    assert show_value([1, "a"]) == '[1, "a"]'
    long = "x" * 200 + "END"
    shown = show_value(long)
    assert shown.startswith('"…') and shown.endswith('END"') and len(shown) <= 122


def test_expected_and_actual_are_shown_in_one_base() -> None:
    from lhvdbg.scenario.values import show_pair

    assert show_pair(0x20, 8) == ("0x20", "0x8")  # not "0x20" against "8"
    assert show_pair(3, 0x28) == ("0x3", "0x28")
    assert show_pair([0x20, 0x28], 8) == ("[0x20, 0x28]", "0x8")  # one_of
    assert show_pair(3, 2) == ("3", "2")  # both small: decimal, as before
    assert show_pair(True, 1) == ("true", "1")
    assert show_pair(-1, 0x10) == ("-1", "0x10")
