"""``tss-limit-too-short``: TR is loaded, but its limit ends before the stack slot needed.

Intel SDM Vol. 3A §7.2.2 (the TSS limit), §7.7 (64-bit TSS: RSPn at 4 + 8n, ISTn at 0x24 +
8(n − 1)), §6.14.5; Vol. 2A INT n: #TS(TR selector + EXT).
"""

from __future__ import annotations

from lhvdbg.diagnose.chain import Chain
from lhvdbg.diagnose.evidence import Evidence
from lhvdbg.diagnose.explain import Failure
from lhvdbg.diagnose.rules._model import cause_for
from lhvdbg.diagnose.rules._registry import Cause, rule
from lhvdbg.x86.tss import TSS_FULL_LIMIT


def _fix(failure: Failure, ev: Evidence) -> str:
    limit = failure.check.fields.get("tr.limit", 0)
    selector = failure.check.fields.get("tr.selector", 0)
    return (
        f"Give the TSS descriptor GDT[{selector & 0xFFF8:#04x}] a limit of at least "
        f"{TSS_FULL_LIMIT:#x} (the whole TSS; it is {limit:#x} now) and load TR with it "
        "again (ltr; clear the descriptor's busy bit first)."
    )


def _tr_loaded(failure: Failure) -> bool:
    return failure.check.fix_fields != ("tr",)


@rule(
    "tss-limit-too-short",
    order=45,
    sdm="Vol. 3A §7.2.2, §7.7, §6.14.5; Vol. 2A INT n",
    fires_on=("tss-limit",),
    cites="TR's limit and selector, the slot's offset, the #TS with the TR selector",
)
def tss_limit_too_short(chain: Chain, ev: Evidence) -> Cause | None:
    """TR was loaded, but the TSS limit ends before the IST or RSPn (ESPn/SSn) slot the
    delivery needs: #TS with the TR selector."""
    return cause_for(
        chain,
        ev,
        "tss-limit-too-short",
        ("tss-limit",),
        fix=_fix,
        accept=_tr_loaded,
        reference="LHV-good's TSS descriptor has limit 0x67",
    )
