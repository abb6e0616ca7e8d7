"""``tss-rsp0-invalid``: an interrupt from an outer ring could not switch to the CPL-0 stack.

Intel SDM Vol. 3A §6.12.1 (stack switch on a privilege change: RSP0, or SS0:ESP0),
§7.7 (64-bit TSS), §7.2.1 (32-bit TSS).
"""

from __future__ import annotations

from lhvdbg.diagnose.chain import Chain, ChainStep
from lhvdbg.diagnose.evidence import Evidence
from lhvdbg.diagnose.explain import Failure
from lhvdbg.diagnose.rules._common import escalation, where
from lhvdbg.diagnose.rules._model import cause_for, model_applies
from lhvdbg.diagnose.rules._registry import Cause, rule
from lhvdbg.x86.cpuview import is_canonical
from lhvdbg.x86.tables import SystemTables
from lhvdbg.x86.tss import rsp_min_limit

_CHECKS_IA32E = {10: "tss-limit", 12: "stack-pointer", 14: "stack-push"}
_CHECKS_PROTECTED = {10: "ss0-invalid", 12: "ss0-present", 14: "stack-push"}


def _check_and_fields(
    raised: ChainStep, tables: SystemTables | None, arch: str
) -> tuple[str | None, tuple[str, ...]]:
    """The delivery check the stack switch failed (from the exception it raised) and the
    fields that mend it."""
    ia32e = tables.mode == "ia32e" if tables is not None else arch == "amd64"
    check = (_CHECKS_IA32E if ia32e else _CHECKS_PROTECTED).get(raised.vector)
    if tables is not None and not tables.tr_loaded:
        return check, ("tr",)
    if tables is not None and tables.tr.limit < (rsp_min_limit(0) if ia32e else 9):
        return "tss-limit", ("tr.limit",)
    if ia32e:
        return check, ("tss.rsp0",)
    return check, ("tss.ss0",) if check in ("ss0-invalid", "ss0-present") else ("tss.esp0",)


_REFERENCE = "Pebbles sets SS0 = 0x18 (SEGSEL_KERNEL_DS) in its TSS and ESP0 per thread"


def _on_rsp_stack(failure: Failure) -> bool:
    """A failure reading or using the privilege-change stack (RSPn / SSn:ESPn) of a TSS
    that was loaded (TR never loaded is ``ist-without-tss``'s)."""
    d = failure.delivery
    stack = d.stack if d is not None else None
    return (
        stack is not None
        and stack.startswith(("rsp", "ss"))
        and failure.check.fix_fields != ("tr",)
    )


def _fix(failure: Failure, ev: Evidence) -> str:
    d = failure.delivery
    stack = d.stack if d is not None and d.stack else "rsp0"
    name = stack.split(":")[-1]
    text = (
        f"Before entering ring 3, set TSS.{name} to the top of a mapped, writable kernel "
        "stack and keep it current per task"
    )
    if name.startswith("esp"):
        text += "; TSS.ss0 = the kernel data selector"
    return text + "."


@rule(
    "tss-rsp0-invalid",
    order=50,
    sdm="Vol. 3A §6.12.1, §7.7",
    fires_on=("stack-pointer", "stack-push"),
    cites="TSS.RSP0 (ESP0/SS0), TR, CR2",
)
def tss_rsp0_invalid(chain: Chain, ev: Evidence) -> Cause | None:
    """An interrupt from an outer ring could not switch to the CPL-0 stack: RSP0 (or
    ESP0/SS0) in the TSS is bad, or TR was never loaded (SDM §6.12.1, PaybackOS #6)."""
    if model_applies(chain, ev):
        return cause_for(
            chain,
            ev,
            "tss-rsp0-invalid",
            ("stack-pointer", "stack-push"),
            fix=_fix,
            accept=_on_rsp_stack,
            reference=_REFERENCE,
        )
    tables = ev.tables
    for i, step in enumerate(chain.steps):
        nxt = chain.steps[i + 1] if i + 1 < len(chain.steps) else None
        if step.event.cpl == 0 or not step.cause_of_next or nxt is None:
            continue
        if nxt.vector not in (10, 12, 13, 14):
            continue
        if nxt.vector == 13 and nxt.error is not None and nxt.error.table == "IDT":
            continue  # gate DPL: another rule
        evidence = [
            f"{step.title} on vector {step.vector:#04x} arrived at CPL {step.event.cpl} "
            f"({where(step)}): delivery to a CPL-0 handler loads the stack from the TSS",
            f"it failed at the same RIP: {nxt.summary()}",
        ]
        if tables is not None:
            ia32e = tables.mode == "ia32e"
            if not tables.tr_loaded:
                evidence.append("TR was never loaded: there is no TSS to take RSP0 from")
            elif tables.tss is not None:
                name = "rsp0" if ia32e else "esp0"
                value = tables.tss.values.get(name)
                if value is not None:
                    bad = value == 0 or (ia32e and not is_canonical(value))
                    evidence.append(
                        f"TSS.{name.upper()} = {value:#x}" + (" (unusable)" if bad else "")
                    )
                if not ia32e:
                    ss0 = tables.tss.values.get("ss0")
                    if ss0 is not None:
                        evidence.append(f"TSS.SS0 = {ss0:#06x}")
                if tables.tr.limit < (rsp_min_limit(0) if ia32e else 9):
                    evidence.append(f"the TSS limit {tables.tr.limit:#x} does not cover it")
        if nxt.vector == 14 and nxt.event.cr2 is not None:
            evidence.append(f"#PF CR2={nxt.event.cr2:#x}: the CPL-0 stack is not mapped")
        evidence += escalation(chain, nxt)
        check, fields = _check_and_fields(nxt, tables, ev.arch)
        return Cause(
            "tss-rsp0-invalid",
            f"an interrupt from CPL {step.event.cpl} could not switch to the kernel stack "
            "(TSS RSP0/SS0)",
            tuple(evidence),
            "Before entering ring 3, set TSS.RSP0 (i386: ESP0, and SS0 = the kernel data "
            "selector) to the top of a mapped kernel stack and keep it current per task; "
            "load TR with ltr.",
            "high",
            _REFERENCE,
            check=check,
            fix_fields=fields,
        )
    return None
