"""The cells of one history event that the text table (``ui/history.py``) and the HTML
timeline (``ui/html/history.py``) both show. Plain strings: no rich, no HTML."""

from __future__ import annotations

from lhvdbg.state.history import HistoryEvent
from lhvdbg.x86.vectors import vector_name

__all__ = ["event_value", "event_what"]


def event_what(event: HistoryEvent) -> str:
    """What the event touched: ``out 0x21``, an MMIO address, the instruction, or the
    vector with its name (``v=0x08 #DF``; a vector with no name of its own: ``v=0x20``)."""
    if event.port is not None:
        return f"out {event.port:#x}"
    if event.address is not None:
        return f"{event.address:#x}"
    if event.insn is not None:
        return event.insn
    if event.kind == "interrupt" and event.value is not None:
        name = vector_name(event.value)
        generic = name == f"vector {event.value:#04x}"
        return f"v={event.value:#04x}" + ("" if generic else f" {name}")
    return event.name


def event_value(event: HistoryEvent) -> str:
    """The value written or loaded, in hex; empty for an interrupt (its vector is in
    :func:`event_what`)."""
    if event.value is None or event.kind == "interrupt":
        return ""
    return f"{event.value:#x}"
