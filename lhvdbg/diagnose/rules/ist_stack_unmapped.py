"""``ist-stack-unmapped``: the IST stack the gate switches to is not mapped writable.

Intel SDM Vol. 3A §6.14.5 (IST), §6.12.1 (the frame is pushed on the new stack), §4.7
(page-fault error code: P, W/R, U/S); a #PF during delivery (CR2 = the store's address).
"""

from __future__ import annotations

from lhvdbg.diagnose.chain import Chain
from lhvdbg.diagnose.evidence import Evidence
from lhvdbg.diagnose.explain import Failure
from lhvdbg.diagnose.rules._model import cause_for
from lhvdbg.diagnose.rules._registry import Cause, rule


def _on_ist(failure: Failure) -> bool:
    d = failure.delivery
    if d is None or failure.role != "delivery" or not (d.stack or "").startswith("ist"):
        return False
    return d.new_sp != 0 and failure.check.fix_fields != ("tr",)


def _fix(failure: Failure, ev: Evidence) -> str:
    d = failure.delivery
    stack = d.stack if d is not None and d.stack else "ist"
    page = failure.check.fix_fields[0]
    return (
        f"Map {page} present and writable (the {stack.upper()} stack), or point "
        f"TSS.{stack} at the top of a stack that is mapped."
    )


@rule(
    "ist-stack-unmapped",
    order=47,
    sdm="Vol. 3A §6.14.5, §6.12.1, §4.7",
    fires_on=("stack-push",),
    cites="TSS.ISTn, the page walk of the frame's first store, the #PF's CR2",
)
def ist_stack_unmapped(chain: Chain, ev: Evidence) -> Cause | None:
    """A gate switches to ISTn whose pointer is canonical but whose stack page is not
    present or not writable: pushing the frame page-faults."""
    return cause_for(chain, ev, "ist-stack-unmapped", ("stack-push",), fix=_fix, accept=_on_ist)
