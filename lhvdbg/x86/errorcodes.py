"""Exception error codes: selector format, #PF, #CP.

Intel SDM Vol. 3A §6.13 (Figure 6-7, selector-format error code), §4.7 (Figure 4-12,
page-fault error code) and §6.15 "Interrupt 21" (control-protection error code).
Which format a vector pushes comes from :mod:`lhvdbg.x86.vectors`.
"""

from __future__ import annotations

from functools import cache

from lhvdbg.errors import DecodeError
from lhvdbg.x86.layout import Field, Layout, bit, bits, catalogued
from lhvdbg.x86.vectors import ErrorCodeFormat, exception_info, vector_name

_TI = {0: "GDT", 1: "LDT"}


@catalogued()
@cache
def selector_error_code_layout() -> Layout:
    """Selector-format error code (Intel SDM Vol. 3A §6.13, Figure 6-7)."""
    return Layout(
        "error code (selector)",
        32,
        (
            bit("ext", 0, "external event caused the exception"),
            bit("idt", 1, "index refers to an IDT gate (vector); TI is then ignored"),
            Field("ti", ((2, 2),), "table of the selector when IDT=0", enum=_TI),
            bits("index", 3, 15, "selector index (or vector when IDT=1)"),
            bits("reserved", 16, 31, "reserved", reserved=True),
        ),
        "Selector-format exception error code (Intel SDM Vol. 3A §6.13, Figure 6-7).",
    )


@catalogued()
@cache
def page_fault_error_code_layout() -> Layout:
    """#PF error code (Intel SDM Vol. 3A §4.7, Figure 4-12)."""
    return Layout(
        "error code (#PF)",
        32,
        (
            Field("p", ((0, 0),), "cause", enum={0: "not-present page", 1: "protection"}),
            Field("wr", ((1, 1),), "access", enum={0: "read", 1: "write"}),
            Field("us", ((2, 2),), "mode", enum={0: "supervisor", 1: "user"}),
            bit("rsvd", 3, "reserved bit set in a paging entry"),
            bit("id", 4, "instruction fetch"),
            bit("pk", 5, "protection-key violation"),
            bit("ss", 6, "shadow-stack access"),
            bit("hlat", 7, "HLAT paging"),
            bit("sgx", 15, "SGX access-control violation"),
        ),
        "Page-fault error code (Intel SDM Vol. 3A §4.7, Figure 4-12).",
    )


@catalogued()
@cache
def control_protection_error_code_layout() -> Layout:
    """#CP error code (Intel SDM Vol. 3A §6.15, Interrupt 21, Table 6-7)."""
    return Layout(
        "error code (#CP)",
        32,
        (
            bits(
                "cpec",
                0,
                14,
                "cause",
                enum={
                    1: "NEAR-RET",
                    2: "FAR-RET/IRET",
                    3: "ENDBRANCH",
                    4: "RSTORSSP",
                    5: "SETSSBSY",
                },
            ),
            bit("encl", 15, "occurred in an enclave"),
        ),
        "Control-protection error code (Intel SDM Vol. 3A §6.15, Interrupt 21).",
    )


@catalogued()
@cache
def zero_error_code_layout() -> Layout:
    """The always-zero error code of #DF and #AC (Intel SDM Vol. 3A §6.15)."""
    return Layout(
        "error code (zero)",
        32,
        (bits("value", 0, 31, "always 0 for this vector"),),
        "Error code that is always zero: #DF, #AC (Intel SDM Vol. 3A §6.15).",
    )


def error_code_layout(vector: int | None) -> Layout:
    """The error-code layout ``vector`` pushes; selector format when ``vector`` is None.

    DecodeError for a vector that pushes no error code.
    """
    if vector is None:
        return selector_error_code_layout()
    info = exception_info(vector)
    if info is None or not info.has_error_code:
        raise DecodeError(f"vector {vector} ({vector_name(vector)}) pushes no error code")
    if info.error_code is ErrorCodeFormat.PAGE_FAULT:
        return page_fault_error_code_layout()
    if info.error_code is ErrorCodeFormat.CONTROL_PROTECTION:
        return control_protection_error_code_layout()
    if info.error_code is ErrorCodeFormat.ZERO:
        return zero_error_code_layout()
    return selector_error_code_layout()
