"""``ioapic-vector-in-exception-range``: an I/O APIC pin delivers on an exception vector.

Intel SDM Vol. 3A §6.2 (vectors 0-31 are the exceptions'), §11.6 (I/O APIC messages carry
the vector of the redirection entry); Intel 82093AA I/O APIC datasheet §3.2.4 (the
redirection entry's vector, bits 0-7, and mask, bit 16).
"""

from __future__ import annotations

from lhvdbg.diagnose.chain import Chain
from lhvdbg.diagnose.evidence import Evidence
from lhvdbg.diagnose.explain import Failure
from lhvdbg.diagnose.rules._model import cause_for
from lhvdbg.diagnose.rules._registry import Cause, rule


def _from_ioapic(failure: Failure) -> bool:
    return any(f.startswith("ioapic.") for f in failure.check.fix_fields)


def _fix(failure: Failure, ev: Evidence) -> str:
    field = failure.check.fix_fields[0]
    pin = field.removeprefix("ioapic.redir[").split("]")[0]
    return (
        f"Write I/O APIC redirection entry {pin} with a vector of 0x20 or above that has its "
        "own handler (and mask the 8259s when the I/O APIC takes the IRQs); end the handler "
        "with a LAPIC EOI."
    )


@rule(
    "ioapic-vector-in-exception-range",
    order=12,
    sdm="Vol. 3A §6.2, §11.6; 82093AA §3.2.4",
    fires_on=("hardware-on-exception-vector",),
    cites="`Servicing hardware INT=0xNN` before `v=NN`, `info pic`'s ioapic pin with that vector",
)
def ioapic_vector_in_exception_range(chain: Chain, ev: Evidence) -> Cause | None:
    """A hardware interrupt on an exception vector came from an I/O APIC pin whose
    redirection entry holds that vector, not from an 8259 or the LAPIC's LVT."""
    return cause_for(
        chain,
        ev,
        "ioapic-vector-in-exception-range",
        ("hardware-on-exception-vector",),
        fix=_fix,
        accept=_from_ioapic,
        reference="LHV-good routes no IRQ below vector 0x20",
    )
