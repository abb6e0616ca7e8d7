"""Every declared layout, for documentation, property tests and lookup by name."""

from __future__ import annotations

from lhvdbg.x86.errorcodes import (
    control_protection_error_code_layout,
    page_fault_error_code_layout,
    selector_error_code_layout,
    zero_error_code_layout,
)
from lhvdbg.x86.layout import Layout
from lhvdbg.x86.paging import pte_layout
from lhvdbg.x86.registers import (
    PAGING_MODES,
    cr0_layout,
    cr3_layout,
    cr4_layout,
    efer_layout,
    eflags_layout,
)
from lhvdbg.x86.segments import (
    gate_layout,
    segment_descriptor_layout,
    selector_layout,
    system_descriptor_layout,
)
from lhvdbg.x86.tss import tss32_layout, tss64_layout

_PAGE_LEVELS = {
    "4level": ((4, False), (3, False), (3, True), (2, False), (2, True), (1, False)),
    "pae": ((3, False), (2, False), (2, True), (1, False)),
    "32bit": ((2, False), (2, True), (1, False)),
}


def all_layouts() -> list[Layout]:
    """Each layout once (per mode where it differs)."""
    out: list[Layout] = [selector_layout()]
    for mode in ("legacy", "ia32e"):
        out += [segment_descriptor_layout(mode), system_descriptor_layout(mode), gate_layout(mode)]
    out += [tss32_layout(), tss64_layout()]
    out += [eflags_layout(), cr0_layout(), cr4_layout(), efer_layout()]
    out += [cr3_layout(p) for p in PAGING_MODES]
    for paging, levels in _PAGE_LEVELS.items():
        out += [pte_layout(paging, level, ps) for level, ps in levels]
    out += [
        selector_error_code_layout(),
        page_fault_error_code_layout(),
        control_protection_error_code_layout(),
        zero_error_code_layout(),
    ]
    return out
