"""``lapic-vector-in-exception-range``: a local APIC LVT entry delivers on an exception vector.

Intel SDM Vol. 3A §6.2 (vectors 0-31 are the exceptions'), §11.5.1 (LVT: the vector field,
bits 0-7; the mask, bit 16), §11.5.4 (APIC timer); vectors 0-15 are illegal for the LAPIC,
16-31 are accepted and collide with exceptions.
"""

from __future__ import annotations

from lhvdbg.diagnose.chain import Chain
from lhvdbg.diagnose.evidence import Evidence
from lhvdbg.diagnose.explain import Failure
from lhvdbg.diagnose.rules._model import cause_for
from lhvdbg.diagnose.rules._registry import Cause, rule


def _from_lapic(failure: Failure) -> bool:
    return any(f.startswith("lapic.") for f in failure.check.fix_fields)


def _fix(failure: Failure, ev: Evidence) -> str:
    entry = failure.check.fix_fields[0].removeprefix("lapic.").removesuffix(".vector")
    return (
        f"Program the LAPIC's {entry.upper().replace('_', ' ')} entry with a vector of 0x20 "
        "or above that has its own handler (LHV uses 0x22 for the LAPIC timer), and send the "
        "LAPIC an EOI (write 0 to its EOI register) at the end of the handler."
    )


@rule(
    "lapic-vector-in-exception-range",
    order=11,
    sdm="Vol. 3A §6.2, §11.5.1, §11.5.4",
    fires_on=("hardware-on-exception-vector",),
    cites="`Servicing hardware INT=0xNN` before `v=NN`, `info lapic`'s LVT entry with that vector",
)
def lapic_vector_in_exception_range(chain: Chain, ev: Evidence) -> Cause | None:
    """A hardware interrupt on an exception vector came from the local APIC (an LVT entry
    holds that vector), not from an 8259."""
    return cause_for(
        chain,
        ev,
        "lapic-vector-in-exception-range",
        ("hardware-on-exception-vector",),
        fix=_fix,
        accept=_from_lapic,
        reference="LHV-good's LAPIC timer uses vector 0x22",
    )
