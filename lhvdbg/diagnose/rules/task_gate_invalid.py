"""``task-gate-invalid``: a task gate names no available TSS.

Intel SDM Vol. 3A §7.3 (task switching), §7.2.5 (task-gate descriptor), §6.11; Vol. 2A INT
n (TASK-GATE): the TSS selector must name an available, present TSS descriptor in the GDT
with a limit of at least 0x67 (#GP / #NP / #TS with the TSS selector otherwise).
"""

from __future__ import annotations

from lhvdbg.diagnose.chain import Chain
from lhvdbg.diagnose.evidence import Evidence
from lhvdbg.diagnose.explain import Failure
from lhvdbg.diagnose.rules._model import cause_for
from lhvdbg.diagnose.rules._registry import Cause, rule


def _fix(failure: Failure, ev: Evidence) -> str:
    vector = failure.delivery.event.vector if failure.delivery is not None else 0
    return (
        f"Point the task gate IDT[{vector:#04x}] at a GDT descriptor of an available 32-bit "
        "TSS (type 0x9, P=1, limit ≥ 0x67) that is not the running task's (a task cannot "
        "switch to itself: its TSS is busy); give that TSS its own stack, EIP, CR3 and "
        "segment selectors."
    )


@rule(
    "task-gate-invalid",
    order=89,
    sdm="Vol. 3A §7.3, §7.2.5; Vol. 2A INT n",
    fires_on=("task-gate-tss",),
    cites="the task gate's TSS selector, that GDT descriptor's type, P and limit",
)
def task_gate_invalid(chain: Chain, ev: Evidence) -> Cause | None:
    """A task gate (protected mode) names no available, present TSS with a large enough
    limit: the task switch cannot start."""
    return cause_for(chain, ev, "task-gate-invalid", ("task-gate-tss",), fix=_fix)
