"""``ist-pointer-invalid``: the IST slot the gate uses holds no usable stack pointer.

Intel SDM Vol. 3A §6.14.5 (IST), §6.14.2 (16-byte alignment), §7.7; Vol. 2A INT n: a
non-canonical new RSP raises #SS(EXT).
"""

from __future__ import annotations

from lhvdbg.diagnose.chain import Chain
from lhvdbg.diagnose.evidence import Evidence
from lhvdbg.diagnose.explain import Failure
from lhvdbg.diagnose.rules._model import cause_for
from lhvdbg.diagnose.rules._registry import Cause, rule


def _ist_slot(failure: Failure) -> bool:
    """A non-canonical ISTn, or ISTn = 0 (never set: the frame's stores wrap below 0)."""
    d = failure.delivery
    if d is None or not (d.stack or "").startswith("ist") or failure.check.fix_fields == ("tr",):
        return False
    if failure.check.id == "stack-push":
        return d.new_sp == 0
    return True


def _fix(failure: Failure, ev: Evidence) -> str:
    slot = failure.check.fix_fields[0]
    return (
        f"Set {slot.upper()} to the top of a mapped, writable kernel "
        "stack (canonical; the CPU aligns it down to 16 bytes) before any gate that uses it "
        "can fire."
    )


@rule(
    "ist-pointer-invalid",
    order=46,
    sdm="Vol. 3A §6.14.5, §6.14.2, §7.7; Vol. 2A INT n",
    fires_on=("stack-pointer", "stack-push"),
    cites="the gate's IST index, the TSS slot's value",
)
def ist_pointer_invalid(chain: Chain, ev: Evidence) -> Cause | None:
    """A gate switches to ISTn, and TSS.ISTn is not canonical (#SS) or 0, never set (the
    frame's stores wrap to the top of the address space and fault)."""
    return cause_for(
        chain,
        ev,
        "ist-pointer-invalid",
        ("stack-pointer", "stack-push"),
        fix=_fix,
        accept=_ist_slot,
    )
