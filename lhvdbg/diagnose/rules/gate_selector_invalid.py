"""``gate-selector-invalid``: the gate's selector does not name a usable code segment.

Intel SDM Vol. 2A INT n: a null selector → #GP(EXT); beyond the GDT/LDT limit, not a code
segment, DPL > CPL, or (IA-32e) not 64-bit code → #GP(selector + EXT); not present →
#NP(selector + EXT). Vol. 3A §6.12.1, §6.14.1.
"""

from __future__ import annotations

from lhvdbg.diagnose.chain import Chain
from lhvdbg.diagnose.evidence import Evidence
from lhvdbg.diagnose.explain import Failure
from lhvdbg.diagnose.rules._model import cause_for, kernel_selectors, view_mode
from lhvdbg.diagnose.rules._registry import Cause, rule

_CHECKS = ("cs-null", "cs-limit", "cs-type", "cs-dpl", "cs-long", "cs-present")


def _fix(failure: Failure, ev: Evidence) -> str:
    vector = failure.delivery.event.vector if failure.delivery is not None else 0
    cs, _ = kernel_selectors(ev)
    kind = "64-bit code segment (L=1, D=0)" if view_mode(failure) == "ia32e" else "code segment"
    check = failure.check.id
    if check == "cs-present":
        selector = failure.check.fields.get(f"idt[{vector:#04x}].selector", 0)
        return (
            f"Point IDT[{vector:#04x}].selector at the kernel's {kind}"
            + (f" ({cs:#04x})" if cs is not None else "")
            + f", or, if GDT[{selector & 0xFFF8:#04x}] is meant to be it, set its P bit."
        )
    return (
        f"Point IDT[{vector:#04x}].selector at the kernel's {kind}"
        + (f": {cs:#04x}, the CS the kernel runs with" if cs is not None else "")
        + "."
    )


@rule(
    "gate-selector-invalid",
    order=87,
    sdm="Vol. 3A §6.12.1, §6.14.1; Vol. 2A INT n",
    fires_on=_CHECKS,
    cites="the gate's selector, the GDT descriptor it names (type, DPL, L/D, P), GDTR.limit",
)
def gate_selector_invalid(chain: Chain, ev: Evidence) -> Cause | None:
    """A delivered vector's gate names no usable code segment: null, beyond the GDT, a
    data or system descriptor, DPL above CPL, not 64-bit code in IA-32e mode, or not
    present."""
    return cause_for(
        chain,
        ev,
        "gate-selector-invalid",
        _CHECKS,
        fix=_fix,
        reference="LHV-good's gates all use the kernel code selector",
    )
