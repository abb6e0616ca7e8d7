"""The one symbolizer (``lhvdbg.state.symbols``): the same name for an address whoever asks."""

from __future__ import annotations

from pathlib import Path

import pytest

from lhvdbg.diagnose.chain import build_chain
from lhvdbg.diagnose.intlog import parse_int_log
from lhvdbg.state.snapshot import load_snapshot
from lhvdbg.state.symbols import REACH, symbolize

SESSION = Path(__file__).resolve().parent.parent / "fixtures" / "intlog" / "session"
SYMBOLS = {"a": 0x1000, "b": 0x1010, "b_alias": 0x1010, "far": 0x40000}


@pytest.mark.parametrize(
    ("address", "name"),
    [
        (0x1000, "a"),
        (0x100F, "a+0xf"),
        (0x1010, "b_alias"),  # two names at one address: the one that sorts last
        (0x1011, "b_alias+0x1"),
        (0x1010 + REACH, f"b_alias+{REACH:#x}"),
        (0x1010 + REACH + 1, None),  # too far from any symbol
        (0xFFF, None),  # below every symbol
        (0x40000, "far"),
    ],
)
def test_the_rule(address: int, name: str | None) -> None:
    assert symbolize(address, SYMBOLS) == name


def test_no_symbols_no_name() -> None:
    assert symbolize(0x1000, {}) is None


def test_the_chain_names_the_recorded_rip_and_cr2() -> None:
    """The recorded stack-overflow run: the chain's symbol at the #PF and the name of its
    CR2 (the guard page below the stack), from the snapshot's name list."""
    snapshot = load_snapshot(SESSION / "stack-overflow.amd64.json")
    events = parse_int_log((SESSION / "stack-overflow.amd64.log").read_text())
    chain = build_chain(events, symbols=snapshot.symbols)
    assert [s.symbol for s in chain.steps] == ["recurse.isra.0+0xa"] * 4
    assert symbolize(chain.steps[0].event.cr2 or 0, snapshot.symbols) == "boot_stack_guard+0xfc0"
