"""The cells of a history event shared by the trace table and the HTML timeline."""

from __future__ import annotations

from lhvdbg.state.history import HistoryEvent
from lhvdbg.ui.event_cells import event_value, event_what


def test_a_port_write_shows_its_port_and_value() -> None:
    icw2 = HistoryEvent(19, "port", value=0x20, port=0x21, name="ICW2")
    assert (event_what(icw2), event_value(icw2)) == ("out 0x21", "0x20")


def test_an_mmio_write_shows_its_address() -> None:
    eoi = HistoryEvent(3, "lapic", value=0, address=0xFEE000B0, name="LAPIC EOI")
    assert (event_what(eoi), event_value(eoi)) == ("0xfee000b0", "0x0")


def test_an_instruction_shows_itself_and_what_it_loaded() -> None:
    lidt = HistoryEvent(16, "insn", value=0x111030, insn="lidt", name="lidt")
    assert (event_what(lidt), event_value(lidt)) == ("lidt", "0x111030")
    sti = HistoryEvent(36, "insn", insn="sti", name="sti")
    assert (event_what(sti), event_value(sti)) == ("sti", "")


def test_an_interrupt_shows_its_vector_named_and_no_value() -> None:
    df = HistoryEvent(40, "interrupt", value=8, name="irq")
    assert (event_what(df), event_value(df)) == ("v=0x08 #DF", "")
    timer = HistoryEvent(41, "interrupt", value=0x20, name="irq")
    assert event_what(timer) == "v=0x20"  # no name of its own


def test_anything_else_shows_its_name() -> None:
    fault = HistoryEvent(50, "fault", name="triple fault")
    assert (event_what(fault), event_value(fault)) == ("triple fault", "")
