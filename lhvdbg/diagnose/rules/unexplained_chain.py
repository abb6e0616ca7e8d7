"""``unexplained-chain``: no rule explains the chain; every event in order, decoded.

Intel SDM Vol. 3A §6.13 (error codes), §6.15 (the exception reference).
"""

from __future__ import annotations

from lhvdbg.diagnose.chain import Chain
from lhvdbg.diagnose.evidence import Evidence
from lhvdbg.diagnose.rules._common import where
from lhvdbg.diagnose.rules._registry import Cause, rule


@rule(
    "unexplained-chain",
    order=1000,
    sdm="Vol. 3A §6.13, §6.15",
    fallback=True,
    cites=(
        "every step in order: error code decoded with the descriptor it names, CPL, the "
        "instruction at RIP"
    ),
    tested_on="constructed chain",
)
def unexplained_chain(chain: Chain, ev: Evidence) -> Cause | None:
    """No rule fired: a precise account of every event in order, error codes decoded."""
    if chain.empty:
        return None
    evidence = []
    if chain.context is not None:
        evidence.append(f"last normal event: {chain.context.summary()}")
    for n, step in enumerate(chain.steps, start=1):
        line = f"{n}. {step.summary()}"
        if step.error is not None and step.error.names:
            line += f" — {step.error.names}"
        if step.event.cpl:
            line += f" (CPL {step.event.cpl})"
        if step.cause_of_next:
            line += "; its delivery raised the next one"
        evidence.append(line)
        if step.error is not None and step.error.quirk:
            evidence.append(f"   {step.error.quirk}")
        instruction = ev.instruction_at(step.event.rip) if step.delivered else None
        if instruction:
            evidence.append(f"   instruction at {step.event.rip:#x}: {instruction}")
    if chain.triple_fault is not None:
        evidence.append(f"{len(chain.steps) + 1}. triple fault")
    first = chain.first
    return Cause(
        "unexplained-chain",
        "no known cause matches; the chain, in order"
        + (f", starts with {first.name} at {where(first)}" if first is not None else ""),
        tuple(evidence),
        "Start from the first exception: its error code and the table entry it names, and "
        "the instruction at its RIP.",
        "low",
    )
