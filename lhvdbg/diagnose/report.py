"""The diagnosis report as data, and :func:`make_report` that builds it from evidence.

``make_report`` is the pure core of ``break-on-df`` and the shell's ``diagnose``:
evidence → chain (from the ``-d int`` log, or from the stack frame under KVM) → outcome →
rules → differences from the reference weighed against what the CPU needs → cross-checks
of the evidence against itself (emulators have quirks; the report says when sources
disagree). Rendering lives in ``lhvdbg.ui.report``; ``Report.to_json`` is the ``--json``
form.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from lhvdbg.diagnose.chain import Chain, ChainStep, build_chain
from lhvdbg.diagnose.events import EventSource, InterruptEvent
from lhvdbg.diagnose.evidence import Evidence, StopInfo
from lhvdbg.diagnose.explain import Explanation, explain
from lhvdbg.diagnose.rules import Cause, diagnose
from lhvdbg.diagnose.tss_diff import Difference, TssDiff, diff_tss, tss_needs
from lhvdbg.state.symbols import symbolize
from lhvdbg.x86.checks import Finding, check_system
from lhvdbg.x86.cpuview import CHECKS, CheckResult
from lhvdbg.x86.interrupt_sources import ioapic_entries
from lhvdbg.x86.vectors import DOUBLE_FAULT

__all__ = ["OUTCOMES", "Outcome", "Report", "chain_to_json", "make_report", "outcome_of"]

Outcome = Literal[
    "hardware-interrupt-on-vector-8",
    "double-fault",
    "triple-fault",
    "reset-requested",
    "guest-exited",
    "kernel-never-started",
    "no-fault",
]
OUTCOMES: tuple[Outcome, ...] = (
    "hardware-interrupt-on-vector-8",
    "double-fault",
    "triple-fault",
    "reset-requested",
    "guest-exited",
    "kernel-never-started",
    "no-fault",
)

VERDICTS: dict[Outcome, str] = {
    "hardware-interrupt-on-vector-8": "vector 8 was a hardware interrupt, not a double fault",
    "double-fault": "a real double fault (#DF)",
    "triple-fault": "triple fault: the CPU gave up and reset",
    "reset-requested": "the guest asked for a reset (not a triple fault)",
    "guest-exited": "the guest exited before vector 8 fired",
    "kernel-never-started": "the kernel never started",
    "no-fault": "no fault: vector 8 never fired",
}
SERIAL_TAIL_LINES = 5  # the serial lines a guest-exited verdict's evidence quotes
PANIC_WORD = "panic"
EXIT_OK_NAMES = ("OK", "SUCCESS")  # an exit enumerator ending so is not a failure


def _seconds(value: float) -> str:
    return f"{value:g} s"


def exit_text(stop: StopInfo) -> str:
    """``0x12 (LHV_EXIT_PANIC)``, or the bare value."""
    if stop.exit_value is None:
        return "no exit value"
    name = f" ({stop.exit_name})" if stop.exit_name else ""
    return f"{stop.exit_value:#x}{name}"


def stop_verdict(outcome: Outcome, stop: StopInfo) -> str:
    """The verdict's words for how the run ended, when the chain does not say it all."""
    text = VERDICTS[outcome]
    if outcome == "reset-requested" and stop.reset_how:
        return f"{text}: {stop.reset_how}"
    if outcome == "guest-exited":
        return f"the guest exited with {exit_text(stop)} before vector 8 fired"
    if outcome == "kernel-never-started":
        limit = f" within {_seconds(stop.limit)}" if stop.limit is not None else ""
        where = f" (the CPU was at {stop.address:#x})" if stop.address is not None else ""
        return f"{text}: its entry point was not reached{limit}{where}"
    if outcome == "no-fault" and stop.reason == "interrupted":
        return "no fault seen so far: the run was interrupted before vector 8 fired"
    if outcome == "no-fault" and stop.reason == "timeout":
        limit = f" within {_seconds(stop.limit)}" if stop.limit is not None else ""
        since = " of the kernel's entry" if stop.kernel_entered else ""
        return f"no fault seen: no vector 8{limit}{since} (the run timed out)"
    return text


@dataclass(frozen=True)
class Report:
    """Everything ``break-on-df`` says, as data."""

    outcome: Outcome
    arch: str
    accel: str | None
    stop: StopInfo
    chain: Chain
    diagnosis: tuple[Cause, ...]
    irrelevant: tuple[Difference, ...] = ()
    relevant: tuple[Difference, ...] = ()
    evidence: tuple[str, ...] = ()
    disagreements: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()
    reference: str | None = None
    qemu_version: str | None = None
    kernel: str | None = None
    int_log: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)
    model: Explanation | None = None  # the delivery model's reading of the chain

    @property
    def verdict(self) -> str:
        """The one-line verdict for the outcome and the top cause."""
        text = stop_verdict(self.outcome, self.stop)
        if self.diagnosis and self.diagnosis[0].id != "unexplained-chain":
            text += f": {self.diagnosis[0].summary}"
        return text

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` object (integers stay integers; null where nothing was pushed)."""
        return {
            "outcome": self.outcome,
            "verdict": self.verdict,
            "arch": self.arch,
            "accel": self.accel,
            "qemu_version": self.qemu_version,
            "kernel": self.kernel,
            "int_log": self.int_log,
            "stop": {
                "reason": self.stop.reason,
                "vector": self.stop.vector,
                "address": self.stop.address,
                "exit_value": self.stop.exit_value,
                "exit_name": self.stop.exit_name,
                "reset": self.stop.reset,
                "reset_how": self.stop.reset_how or None,
                "limit": self.stop.limit,
                "kernel_entered": self.stop.kernel_entered,
                "detail": self.stop.detail,
            },
            "chain": chain_to_json(self.chain),
            "context": _step_json(self.chain.context) if self.chain.context else None,
            "triple_fault": self.chain.triple_fault is not None,
            "diagnosis": [c.to_json() for c in self.diagnosis],
            "evidence": list(self.evidence),
            "disagreements": list(self.disagreements),
            "reference": self.reference,
            "relevant_differences": [d.to_json() for d in self.relevant],
            "irrelevant_differences": [d.to_json() for d in self.irrelevant],
            "findings": [f.to_dict() for f in self.findings],
            "notes": list(self.notes),
            "model": model_to_json(self.model) if self.model is not None else None,
        }


FOLDED_ERROR_CODE_NOTE = (
    "raised, then folded before delivery: QEMU's log has no v= line for it, so no error code"
)


def _step_json(step: ChainStep) -> dict[str, Any]:
    """One row of the chain: a raise, delivered or folded into the next (``folded_into``:
    ``#DF`` or ``triple fault``); ``error_code`` is null when none was pushed or logged."""
    event = step.event
    out: dict[str, Any] = {
        "vector": event.vector,
        "name": step.name,
        "source": event.source,
        "error_code": event.error_code,
        "delivered": event.delivered,
        "folded_into": step.folded_into,
        "rip": event.rip,
        "title": step.title,
        "cs": event.cs,
        "sp": event.sp,
        "cpl": event.cpl,
        "symbol": step.symbol,
        "raised_next": step.cause_of_next,
        "log_line": event.line or None,
        "origin": _origin_json(step),
    }
    if not event.delivered:
        out["error_code_note"] = FOLDED_ERROR_CODE_NOTE
    if event.cr2 is not None:
        out["cr2"] = event.cr2
    if step.error is not None:
        out["error_code_decoded"] = {
            "format": step.error.format,
            "text": step.error.text,
            "fields": dict(step.error.fields),
            "names": step.error.names,
            "quirk": step.error.quirk,
        }
    return out


def _origin_json(step: ChainStep) -> dict[str, Any] | None:
    """The device input behind a hardware interrupt (the x86 vector map), else null."""
    origin = step.origin
    if origin is None:
        return None
    return {
        "source": origin.source,
        "line": origin.line,
        "irq": origin.irq,
        "device": origin.device,
        "masked": origin.masked,
    }


def _check_json(check: CheckResult) -> dict[str, Any]:
    raised = check.raises
    return {
        "id": check.id,
        "ok": check.ok,
        "text": check.text,
        "sdm": CHECKS.get(check.id),
        "fields": dict(check.fields),
        "fix_fields": list(check.fix_fields),
        "raises": None
        if raised is None
        else {"vector": raised.vector, "error_code": raised.error_code, "cr2": raised.cr2},
    }


def model_to_json(x: Explanation) -> dict[str, Any]:
    """The delivery model's account: per explained event its origin, each delivery's
    checks in the SDM's order (the failing one last), agreement with the log, notes."""
    first = x.first
    return {
        "first_failure": None
        if first is None
        else {"role": first.role, "event_vector": first.step.vector, **_check_json(first.check)},
        "accounts": [
            {
                "vector": a.step.vector,
                "source": a.step.source,
                "log_line": a.step.event.line or None,
                "origin": _check_json(a.origin) if a.origin is not None else None,
                "deliveries": [
                    {
                        "vector": d.event.vector,
                        "kind": d.event.kind,
                        "ext": d.event.ext,
                        "mode": d.mode,
                        "stack": d.stack,
                        "new_sp": d.new_sp,
                        "checks": [_check_json(c) for c in d.checks],
                    }
                    for d in a.deliveries
                ],
                "triple_fault": a.triple_fault,
                "agreement": a.agreement,
                "notes": list(a.notes),
            }
            for a in x.accounts
        ],
    }


def chain_to_json(chain: Chain) -> list[dict[str, Any]]:
    """The chain's rows as ``{vector, name, source, error_code, delivered, ...}`` objects:
    every raise in the log's order, folded ones included (the triple fault itself is the
    report's ``triple_fault``)."""
    return [_step_json(s) for s in chain.steps]


def guest_failed(stop: StopInfo, serial: str) -> bool:
    """Whether the guest's own exit was a failure: an exit value whose DWARF name is not
    an OK/SUCCESS one, or ``panic`` in its serial output (an unnamed value alone says
    nothing: kernels choose their own codes)."""
    if PANIC_WORD in serial.lower():
        return True
    if stop.exit_value is None or not stop.exit_name:
        return False
    return not stop.exit_name.upper().endswith(EXIT_OK_NAMES)


def outcome_of(chain: Chain, stop: StopInfo, int_log: bool, serial: str = "") -> Outcome:
    """The outcome from the chain (TCG log) or, without a log, from how the run stopped."""
    if chain.triple_fault is not None:
        return "triple-fault"
    step = chain.stop
    if step is not None:
        return "hardware-interrupt-on-vector-8" if step.source == "hardware" else "double-fault"
    if stop.reason == "timeout" and stop.kernel_entered is False:
        return "kernel-never-started"
    if stop.reason == "shutdown":
        if stop.reset == "reset-requested":
            return "reset-requested"
        if stop.reset == "triple-fault" or not int_log:
            return "triple-fault"  # no log under KVM: a guest reset is the only sign
    if stop.reason == "exited" and guest_failed(stop, serial):
        return "guest-exited"
    return "no-fault"


def serial_tail(serial: str, lines: int = SERIAL_TAIL_LINES) -> list[str]:
    """The last non-empty lines of the serial output."""
    kept = [line.rstrip() for line in serial.replace("\r\n", "\n").splitlines() if line.strip()]
    return kept[-lines:]


def _frame_events(ev: Evidence) -> tuple[InterruptEvent, ...]:
    """Under KVM (no log): the vector-8 delivery reconstructed from the handler's frame."""
    frame = ev.frame
    if frame is None or ev.stop.reason != "vector" or ev.stop.vector != DOUBLE_FAULT:
        return ()
    if frame.kind == "unknown" or frame.rip is None:
        return ()
    source: EventSource = "hardware" if frame.kind == "no-error-code" else "exception"
    return (
        InterruptEvent(
            vector=DOUBLE_FAULT,
            source=source,
            error_code=frame.error_code,
            rip=frame.rip,
            cs=frame.cs or 0,
            sp=0,
            cpl=(frame.cs or 0) & 3,
        ),
    )


def _cross_check(chain: Chain, ev: Evidence) -> list[str]:
    """Where the evidence disagrees with itself (and which source to trust)."""
    notes: list[str] = []
    stop = chain.stop
    frame = ev.frame
    if stop is not None and frame is not None and ev.int_log and ev.stop.reason == "vector":
        if stop.source == "hardware" and frame.kind == "error-code":
            notes.append(
                "the log says vector 8 was a hardware interrupt, but the handler's stack looks "
                f"like it holds an error code ({frame.describe(ev.word_size)})"
            )
        if stop.source == "exception" and frame.kind == "no-error-code":
            notes.append(
                "the log says vector 8 was a #DF, but the handler's stack holds no error code "
                f"({frame.describe(ev.word_size)})"
            )
        if (
            stop.source == "exception"
            and frame.kind == "error-code"
            and frame.error_code not in (None, 0)
        ):
            notes.append(f"a #DF pushes error code 0, the stack holds {frame.error_code:#x}")
    if frame is not None and frame.kind == "unknown" and ev.stop.reason == "vector":
        notes.append(
            "the words at the vector-8 handler's stack pointer fit neither frame shape "
            f"({frame.describe(ev.word_size)}): the stack is not what delivery pushed"
        )
    pic = ev.snapshot.pic if ev.snapshot is not None else None
    for step in chain.steps:
        if step.source == "hardware" and pic is not None and step.origin is None:
            notes.append(
                f"the log shows a hardware interrupt on {step.vector:#04x}, which neither the "
                f"PIC bases ({pic.master.irq_base:#04x}/{pic.slave.irq_base:#04x}, IRQ2 the "
                "cascade) nor the local APIC's LVT produce: a later reprogramming?"
            )
        if step.error is not None and step.error.quirk:
            notes.append(step.error.quirk)
    for i, step in enumerate(chain.steps[1:], start=1):
        before = chain.steps[i - 1]
        if (
            before.source == "hardware"
            and before.cause_of_next
            and step.error is not None
            and step.error.format == "selector"
            and step.error.table == "IDT"
            and not step.error.external
        ):
            notes.append(
                f"{step.name}'s error code has EXT=0 while delivering a hardware interrupt: "
                "QEMU TCG does not set EXT (a CPU sets it)"
            )
    if ev.accel == "kvm" and not ev.int_log:
        notes.append(
            "KVM: no interrupt log; the chain is reconstructed from the vector-8 handler's "
            "stack frame, the PIC/LAPIC state and the registers"
        )
    return notes


def _at(address: int, symbols: Mapping[str, int]) -> str:
    """``0x100160 (isr_8)`` when a symbol covers ``address``, else the address."""
    name = symbolize(address, symbols)
    return f"{address:#x} ({name})" if name else f"{address:#x}"


def _stop_evidence(ev: Evidence) -> list[str]:
    """How the run ended, when that is the story (a triple fault's story is the chain): a
    requested reset and how it was told, a reset judged without a log, the guest's failed
    exit; and then the last serial lines."""
    stop = ev.stop
    lines: list[str] = []
    requested = stop.reason == "shutdown" and stop.reset == "reset-requested"
    if stop.reason == "shutdown" and stop.reset_how and (requested or not ev.int_log):
        lines.append(f"the reset: {stop.reset} ({stop.reset_how})")
    failed = stop.reason == "exited" and guest_failed(stop, ev.serial)
    if failed:
        lines.append(f"the guest exited with {exit_text(stop)}")
    never = stop.kernel_entered is False
    if (requested or failed or never) and ev.serial.strip():
        lines += [f"serial: {line}" for line in serial_tail(ev.serial)]
    return lines


def _general_evidence(chain: Chain, ev: Evidence, symbols: Mapping[str, int]) -> list[str]:
    lines: list[str] = _stop_evidence(ev)
    snapshot = ev.snapshot
    if snapshot is not None:
        cpu = snapshot.cpu
        lines.append(
            f"at the stop: RIP {_at(cpu.ip, symbols)}, RSP {cpu.sp:#x}, RFLAGS {cpu.flags:#x}, "
            f"CPL {cpu.cpl}, mode {cpu.mode}"
        )
        tr = cpu.tr
        lines.append(
            f"TR: selector {tr.selector:#06x}, base {tr.base:#x}, limit {tr.limit:#x}, "
            f"flags {tr.flags:#x}"
            + (" (reset state: ltr never ran)" if tr.selector & 0xFFFC == 0 else "")
        )
        pic = snapshot.pic
        if pic is not None:
            m, s = pic.master, pic.slave
            lines.append(
                f"info pic: master irq_base={m.irq_base:#04x} imr={m.imr:#04x} "
                f"isr={m.isr:#04x} irr={m.irr:#04x}; slave irq_base={s.irq_base:#04x} "
                f"imr={s.imr:#04x} isr={s.isr:#04x}"
            )
        lapic = snapshot.lapic
        if lapic is not None:
            in_service = [v for v in range(256) if lapic.isr >> v & 1]
            lines.append(
                f"info lapic: {'enabled' if lapic.enabled else 'disabled'} (SVR "
                f"{lapic.svr:#x}), LVT timer {lapic.lvt_timer:#x}, ISR "
                + (", ".join(f"{v:#04x}" for v in in_service) if in_service else "empty")
            )
    if ev.frame is not None and ev.stop.reason == "vector":
        lines.append(
            f"stack at the vector-{ev.stop.vector} handler: " + ev.frame.describe(ev.word_size)
        )
        if ev.frame.rip is not None:
            instruction = ev.instruction_at(ev.frame.rip)
            rip = _at(ev.frame.rip, symbols)
            if ev.after_hlt(ev.frame.rip):
                lines.append(f"the interrupted RIP {rip} follows a hlt")
            elif instruction:
                lines.append(f"instruction at the interrupted RIP {rip}: {instruction}")
    if chain.earlier:
        lines.append(f"{chain.earlier} earlier event(s) of the run were delivered normally")
    return lines


def make_report(ev: Evidence) -> Report:
    """Diagnose ``ev``: build the chain, run the rules, weigh the differences."""
    snapshot = ev.snapshot
    tables = ev.tables
    pic = snapshot.pic if snapshot is not None else None
    lapic = snapshot.lapic if snapshot is not None else None
    ioapic = ioapic_entries(snapshot.hmp.get("info pic", "")) if snapshot is not None else None
    symbols = dict(ev.symbols) or (dict(snapshot.symbols) if snapshot is not None else {})
    if ev.int_log:
        chain = build_chain(
            ev.events, tables=tables, symbols=symbols, pic=pic, lapic=lapic, ioapic=ioapic
        )
    else:
        chain = build_chain(
            _frame_events(ev),
            tables=tables,
            symbols=symbols,
            pic=pic,
            lapic=lapic,
            ioapic=ioapic,
            qemu_tcg=False,
        )
    outcome = outcome_of(chain, ev.stop, ev.int_log, ev.serial)
    causes = diagnose(chain, ev)
    relevant: list[Difference] = []
    irrelevant: list[Difference] = []
    notes: list[str] = []
    findings: list[Finding] = []
    if snapshot is not None and tables is not None:
        in_use = {s.vector for s in chain.delivered}
        findings = check_system(tables, snapshot.cpu, pic=pic, vectors_in_use=in_use)
        tdiff: TssDiff | None = None
        if ev.reference is not None:
            tdiff = diff_tss(
                snapshot,
                ev.reference,
                reference_name=ev.reference_name or "reference",
                events=ev.events,
                tables=tables,
            )
            relevant += tdiff.mattering
            irrelevant += tdiff.harmless
            if tdiff.differences:  # the notes explain differences; alone they are noise
                notes += tdiff.notes
        elif not tables.tr_loaded:
            needs = tss_needs(tables, snapshot.cpu, ev.events)
            diff = Difference(
                "tr.selector",
                None,
                snapshot.cpu.tr.selector,
                "TR was never loaded (reset state)"
                + (f"; it matters: {needs.reason()}" if needs.any else f"; {needs.reason()}"),
                needs.any,
            )
            (relevant if needs.any else irrelevant).append(diff)
    return Report(
        outcome=outcome,
        arch=ev.arch,
        accel=ev.accel,
        stop=ev.stop,
        chain=chain,
        diagnosis=tuple(causes),
        irrelevant=tuple(irrelevant),
        relevant=tuple(relevant),
        evidence=tuple(_general_evidence(chain, ev, symbols)),
        disagreements=tuple(dict.fromkeys(_cross_check(chain, ev))),
        findings=tuple(findings),
        reference=ev.reference_name,
        qemu_version=ev.qemu_version,
        kernel=ev.kernel,
        int_log=ev.int_log,
        notes=tuple(notes),
        model=explain(chain, ev) if chain.steps and tables is not None else None,
    )
