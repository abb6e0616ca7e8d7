"""Causes from the delivery model: one failing check → one cause, its fix from the check.

A model-driven rule names the check ids it answers and how to word the fix for a failure
of one of them; :func:`cause_for` finds the failure in the model's explanation of the
chain (:mod:`lhvdbg.diagnose.explain`), and builds the cause: the summary is the check and
the value it read, the evidence the log lines and the model's agreement with them, the fix
derived from the failed check alone. A cause for the *first* failing check in time is
``high``; one for a later failure (an escalation) is ``medium``.
"""

from __future__ import annotations

from collections.abc import Callable

from lhvdbg.diagnose.chain import Chain, describe_gate
from lhvdbg.diagnose.evidence import Evidence
from lhvdbg.diagnose.explain import Explanation, Failure, explain
from lhvdbg.diagnose.rules._common import log_ref, where
from lhvdbg.diagnose.rules._registry import Cause
from lhvdbg.x86.delivery import Delivery
from lhvdbg.x86.vectors import DOUBLE_FAULT, vector_name

__all__ = [
    "FixText",
    "cause_for",
    "delivery_words",
    "failure_for",
    "kernel_selectors",
    "model_applies",
]

FixText = Callable[[Failure, Evidence], str]


def failure_for(
    chain: Chain, ev: Evidence, checks: tuple[str, ...], accept: Callable[[Failure], bool] | None
) -> tuple[Failure, bool] | None:
    """The first failure of one of ``checks`` (and accepted), and whether it is the first
    failure of the chain."""
    x = explain(chain, ev)
    for n, failure in enumerate(x.failures):
        if failure.check.id in checks and (accept is None or accept(failure)):
            return failure, n == 0
    return None


def delivery_words(d: Delivery) -> str:
    """``delivering IRQ 0x20`` / ``delivering #GP``."""
    e = d.event
    if e.kind == "hardware":
        return f"delivering the hardware interrupt on vector {e.vector:#04x}"
    if e.kind == "software":
        return f"delivering int {e.vector:#04x}"
    return f"delivering {vector_name(e.vector)}"


def _evidence(x: Explanation, failure: Failure, ev: Evidence) -> list[str]:
    lines: list[str] = []
    step = failure.step
    where_text = f"{log_ref(step)}: {step.summary()}"
    if failure.role == "delivery" and failure.delivery is not None:
        d = failure.delivery
        lines.append(f"{where_text}")
        gate = describe_gate(ev.tables, d.event.vector)
        if gate is not None and d.mode != "real":
            lines.append(gate)
        passed = [c for c in d.checks if c.ok]
        if passed:
            lines.append("passed: " + "; ".join(c.text for c in passed[-3:]))
        lines.append(
            f"failed while {delivery_words(d)}: [{failure.check.id}] {failure.check.text} "
            f"(SDM {failure.check.sdm})"
        )
        raised = failure.check.raises
        if raised is not None:
            code = f"({raised.error_code:#x})" if raised.error_code is not None else ""
            lines.append(f"so the CPU raises {vector_name(raised.vector)}{code}")
    else:
        lines.append(where_text)
        lines.append(f"[{failure.check.id}] {failure.check.text}")
    for account in x.accounts:
        if account.step is step:
            if account.agreement == "confirmed":
                lines.append("the model's chain agrees with QEMU's log")
            for note in account.notes:
                lines.append(note)
            if account.triple_fault:
                lines.append("then a triple fault: the #DF could not be delivered either")
            elif account.deliveries and account.deliveries[-1].event.vector == DOUBLE_FAULT:
                lines.append("the second fault made a #DF, delivered at vector 0x08")
    return lines


def cause_for(
    chain: Chain,
    ev: Evidence,
    cause_id: str,
    checks: tuple[str, ...],
    *,
    fix: FixText,
    summary: Callable[[Failure], str] | None = None,
    accept: Callable[[Failure], bool] | None = None,
    reference: str = "",
) -> Cause | None:
    """The cause ``cause_id`` when the model finds one of ``checks`` failing."""
    found = failure_for(chain, ev, checks, accept)
    if found is None:
        return None
    failure, first = found
    x = explain(chain, ev)
    text = summary(failure) if summary is not None else failure.check.text
    if failure.role == "delivery" and failure.delivery is not None and summary is None:
        text = f"{text}, {delivery_words(failure.delivery)} at {where(failure.step)}"
    return Cause(
        cause_id,
        text,
        tuple(_evidence(x, failure, ev)),
        fix(failure, ev),
        "high" if first else "medium",
        reference,
        check=failure.check.id,
        fix_fields=failure.check.fix_fields,
    )


def kernel_selectors(ev: Evidence) -> tuple[int | None, int | None]:
    """(kernel CS, kernel SS) as the captured CPU uses them at CPL 0, when it does."""
    cpu = ev.cpu
    if cpu is None or cpu.cpl != 0:
        return None, None
    return cpu.segments["cs"].selector, cpu.segments["ss"].selector


def view_mode(failure: Failure) -> str:
    """``ia32e``/``protected``/``real`` of the delivery that failed (``protected`` when
    the failure is an instruction's)."""
    return failure.delivery.mode if failure.delivery is not None else "protected"


def gate_size(failure: Failure) -> int:
    """Bytes per IDT gate in the failing delivery's mode."""
    return 16 if view_mode(failure) == "ia32e" else 8


def model_applies(chain: Chain, ev: Evidence) -> bool:
    """Whether the model could read the state for the chain (tables captured, events to
    explain): then it alone decides the delivery-check causes."""
    if ev.tables is None or not chain.steps:
        return False
    return any(a.deliveries for a in explain(chain, ev).accounts)
