"""``tss-ss0-invalid``: an interrupt from an outer ring finds no usable SS0 in the TSS.

Intel SDM Vol. 3A §6.12.1 (stack switch: SS0:ESP0 from the TSS), §7.2.1; Vol. 2A INT n
(INTER-PRIVILEGE-LEVEL-INTERRUPT): a null SS0 → #TS(EXT); beyond the GDT, RPL/DPL ≠ the new
CPL, or not a writable data segment → #TS(SS0 + EXT); not present → #SS(SS0 + EXT).
"""

from __future__ import annotations

from lhvdbg.diagnose.chain import Chain
from lhvdbg.diagnose.evidence import Evidence
from lhvdbg.diagnose.explain import Failure
from lhvdbg.diagnose.rules._model import cause_for
from lhvdbg.diagnose.rules._registry import Cause, rule

_CHECKS = ("ss0-null", "ss0-invalid", "ss0-present")


def _fix(failure: Failure, ev: Evidence) -> str:
    ds = next(
        (
            e.selector
            for e in (ev.tables.gdt.entries if ev.tables and ev.tables.gdt else ())
            if e.kind == "data"
            and e.decoded is not None
            and e.decoded.values["dpl"] == 0
            and e.decoded.values["type"] & 0x2
        ),
        None,
    )
    return (
        "Set TSS.ss0 to the kernel's data selector"
        + (f" ({ds:#04x})" if ds is not None else "")
        + " — a present, writable data segment of DPL 0 with RPL 0 — and TSS.esp0 to the "
        "top of the kernel stack."
    )


@rule(
    "tss-ss0-invalid",
    order=55,
    sdm="Vol. 3A §6.12.1, §7.2.1; Vol. 2A INT n",
    fires_on=_CHECKS,
    cites="TSS.SS0, the GDT descriptor it names",
)
def tss_ss0_invalid(chain: Chain, ev: Evidence) -> Cause | None:
    """An interrupt from ring 3 (protected mode) reads SS0 from the TSS, and SS0 is null,
    not a writable DPL-0 data segment, or not present."""
    return cause_for(chain, ev, "tss-ss0-invalid", _CHECKS, fix=_fix)
