"""``iret-bad-rip``: IRET popped an instruction pointer it cannot return to.

Intel SDM Vol. 2A IRET: in IA-32e mode a non-canonical RIP, in protected mode an EIP
beyond the code segment's limit, raises #GP(0).
"""

from __future__ import annotations

from lhvdbg.diagnose.chain import Chain
from lhvdbg.diagnose.evidence import Evidence
from lhvdbg.diagnose.explain import Failure
from lhvdbg.diagnose.rules._model import cause_for
from lhvdbg.diagnose.rules._registry import Cause, rule


def _fix(failure: Failure, ev: Evidence) -> str:
    rip = failure.check.fields.get("iret_frame.rip", 0)
    return (
        f"The interrupt frame's return address ({rip:#x}) was overwritten before iret: "
        "check what the handler pushes and pops (the stack must be where the CPU left it), "
        "and any code that builds a frame by hand."
    )


@rule(
    "iret-bad-rip",
    order=71,
    sdm="Vol. 2A IRET",
    fires_on=("iret-rip",),
    cites="the frame iret popped, the instruction at the faulting RIP",
)
def iret_bad_rip(chain: Chain, ev: Evidence) -> Cause | None:
    """``iret`` popped a non-canonical RIP (IA-32e) or an EIP beyond CS's limit: #GP(0)."""
    return cause_for(chain, ev, "iret-bad-rip", ("iret-rip",), fix=_fix)
