"""Rendering of diagnosis reports (``break-on-df``, ``diagnose``) and TSS diffs.

Order of a report, most useful first: the verdict, the chain as a timeline, the causes
(evidence and fix each), the accelerator used, where the evidence disagrees, and the
differences from the reference that did not matter. Plain text reads well with colour
off: markers (``!``/``-``, ``matters``/``harmless``) carry the meaning, not only colour.
"""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from lhvdbg.diagnose.chain import Chain, ChainStep
from lhvdbg.diagnose.explain import Explanation
from lhvdbg.diagnose.report import Report
from lhvdbg.diagnose.rules import Cause
from lhvdbg.diagnose.tss_diff import Difference, TssDiff
from lhvdbg.ui.tables import FitTable, bullet
from lhvdbg.x86.vectors import vector_name

__all__ = ["render_report", "render_tss_diff"]

_OUTCOME_STYLE = {
    "hardware-interrupt-on-vector-8": "bold yellow",
    "double-fault": "bold red",
    "triple-fault": "bold red",
    "reset-requested": "bold yellow",
    "guest-exited": "bold red",
    "kernel-never-started": "bold yellow",
    "no-fault": "bold green",
}
TIMED_OUT_STYLE = "bold yellow"  # no-fault because the run ran out of time: not green
_CONFIDENCE_STYLE = {"high": "bold", "medium": "", "low": "dim"}


def _heading(text: str) -> Text:
    return Text(text, style="bold underline")


def _value(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:#x}"
    return str(value)


def _event_text(step: ChainStep) -> str:
    if not step.delivered:
        return f"{step.name} {step.title} (folded)"
    if step.source == "exception":
        return f"{step.name} {step.title}"
    if step.source == "software":
        return f"int {step.vector:#04x} (software)"
    if step.irq is not None:
        line = step.irq[1] + (8 if step.irq[0] == "slave" else 0)
        return f"IRQ{line} ({step.irq[0]} PIC) on vector {step.vector:#04x}"
    if step.origin is not None:
        return f"{step.origin.label} on vector {step.vector:#04x}"
    return f"hardware interrupt on vector {step.vector:#04x}"


def _timeline(chain: Chain) -> Table:
    table = FitTable(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("#", no_wrap=True)
    table.add_column("event", ratio=3, overflow="fold")
    table.add_column("error code", ratio=3, overflow="fold")
    table.add_column("at", ratio=2, overflow="fold")
    table.add_column("note", ratio=2, overflow="fold")
    rows: list[tuple[str, ChainStep]] = []
    if chain.context is not None:
        rows.append(("ctx", chain.context))
    rows += [(str(i), s) for i, s in enumerate(chain.steps, start=1)]
    for label, step in rows:
        error = "-"
        if step.error is not None:
            error = f"{step.error.raw:#x}: {step.error.text}"
        elif not step.delivered:
            error = "not in the log"
        elif step.source == "exception":
            error = "none"
        note = []
        if not step.delivered:
            old = step.event.check_old
            if old is not None and old != -1:
                note.append(f"raised while delivering {vector_name(old)}")
            note.append(f"folded into the {step.folded_into or 'next'}")
        if label == "ctx":
            note.append("last normal event")
        if chain.stop is step:
            note.append("first vector 8")
        if step.cause_of_next:
            note.append("its delivery raised the next")
        at = step.symbol or f"{step.event.rip:#x}"
        if step.symbol:
            at += f" ({step.event.rip:#x})"
        style = None if step.delivered else "dim italic"
        table.add_row(label, _event_text(step), error, at, ", ".join(note), style=style)
    if chain.triple_fault is not None:
        table.add_row(str(len(chain.steps) + 1), "triple fault", "-", "-", "CPU reset/stop")
    return table


def _cause(n: int, cause: Cause) -> RenderableType:
    head = Text(f"[{cause.id}] ", style="bold cyan")
    head.append(cause.summary, style=_CONFIDENCE_STYLE[cause.confidence])
    head.append(f"  (confidence: {cause.confidence})", style="dim")
    parts: list[RenderableType] = [bullet(head, f"{n}. ".ljust(3), style="bold")]
    for line in cause.evidence:
        parts.append(bullet(line, indent=3))
    parts.append(bullet(cause.fix, "fix: ", indent=3, style="green"))
    if cause.fix_fields:
        mends = ", ".join(cause.fix_fields)
        check = f" (check {cause.check})" if cause.check else ""
        parts.append(bullet(f"{mends}{check}", "changes: ", indent=3, style="green"))
    if cause.reference:
        parts.append(bullet(cause.reference, "reference: ", indent=3, style="dim"))
    return Group(*parts)


def _shared_reason(diffs: tuple[Difference, ...]) -> str | None:
    """The `` — harmless: ...`` tail that two or more explanations end with (the most
    common one), said once under the table instead of on every row."""
    tails = [d.explanation.rpartition(" — ")[2] for d in diffs if " — " in d.explanation]
    common = max(set(tails), key=tails.count, default=None)
    return common if common is not None and tails.count(common) > 1 else None


def _differences(diffs: tuple[Difference, ...], *, title: str) -> RenderableType:
    shared = _shared_reason(diffs)
    table = FitTable(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("field", no_wrap=True)
    table.add_column("reference", no_wrap=True)
    table.add_column("actual", no_wrap=True)
    table.add_column("", no_wrap=True)
    table.add_column("why", overflow="fold", ratio=1)
    for d in diffs:
        head, _, tail = d.explanation.rpartition(" — ")
        table.add_row(
            d.field,
            _value(d.reference),
            _value(d.actual),
            Text("matters", style="bold red") if d.matters else Text("harmless", style="green"),
            f"{head} (*)" if shared is not None and tail == shared else d.explanation,
        )
    if shared is None:
        return table
    return Group(table, bullet(shared, "(*) "))


_AGREEMENT = {
    "confirmed": "agrees with QEMU's log",
    "quirk": "agrees with QEMU's log up to a known QEMU quirk",
    "differs": "differs from QEMU's log",
    "unknown": "not compared with a log",
}


def _model_lines(model: Explanation) -> list[RenderableType]:
    """One line per event the model explained: origin, each delivery's failing check
    (or where its handler runs), what it raises, and agreement with the log."""
    lines: list[RenderableType] = []
    said: set[tuple[str, str]] = set()  # a failing check's reason is said once
    for account in model.accounts:
        step = account.step
        head = f"{step.name} {step.title}"
        if account.origin is not None and account.origin.ok is False:
            lines.append(
                bullet(f"{head}: raised because [{account.origin.id}] {account.origin.text}")
            )
        for d in account.deliveries:
            failed = d.failed
            if d.event.kind == "hardware":  # a device interrupt, whatever the vector's name
                what = f"deliver the device interrupt on vector {d.event.vector:#04x}"
            elif d.event.kind == "software":
                what = f"deliver int {d.event.vector:#04x}"
            else:
                what = f"deliver {vector_name(d.event.vector)}" + (" (EXT)" if d.event.ext else "")
            if failed is None:
                where = f"handler {d.handler:#x}" if d.handler is not None else "delivered"
                stack = f" on the {d.stack} stack" if d.stack else ""
                text = f"{what}: {len(d.checks)} checks pass — {where}{stack}"
                if d.undecided:
                    text += f" ({len(d.undecided)} undecided: state not captured)"
                lines.append(bullet(text, "  ✓ "))
            else:
                raised = failed.raises
                code = (
                    f"({raised.error_code:#x})"
                    if raised is not None and raised.error_code is not None
                    else ""
                )
                into = f" → {vector_name(raised.vector)}{code}" if raised is not None else ""
                reason = failed.text
                if (failed.id, failed.text) in said:
                    reason = "fails the same way (above)"
                said.add((failed.id, failed.text))
                lines.append(bullet(f"{what}: [{failed.id}] {reason}{into}", "  ✗ ", style="red"))
        if account.triple_fault:
            lines.append(
                bullet("the #DF cannot be delivered either: shutdown (triple fault)", "  ✗ ")
            )
        verdict = _AGREEMENT[account.agreement]
        lines.append(bullet(verdict, "    ", style="dim"))
        lines += [bullet(note, "    ", style="dim") for note in account.notes]
    return lines


def render_report(report: Report) -> RenderableType:
    """The whole report as one renderable."""
    parts: list[RenderableType] = []
    verdict = Text("verdict: ", style="bold")
    style = _OUTCOME_STYLE.get(report.outcome, "bold")
    if report.outcome == "no-fault" and report.stop.reason == "timeout":
        style = TIMED_OUT_STYLE
    verdict.append(report.outcome, style=style)
    parts.append(verdict)
    parts.append(Text(report.verdict))
    where = f"{report.arch}, accelerator {report.accel or 'none (offline)'}"
    if report.qemu_version:
        where += f", QEMU {report.qemu_version}"
    where += ", interrupt log " + ("yes" if report.int_log else "no")
    parts.append(Text(where, style="dim"))
    if report.kernel:
        parts.append(Text(f"kernel: {report.kernel}", style="dim"))
    stop = report.stop
    parts.append(
        Text(f"stop: {stop.reason}" + (f" ({stop.detail})" if stop.detail else ""), style="dim")
    )
    parts.append(Text(""))
    if report.chain.steps or report.chain.context is not None:
        parts.append(_heading("chain"))
        parts.append(_timeline(report.chain))
        parts.append(Text(""))
    if report.model is not None and report.model.accounts:
        parts.append(_heading("what the CPU checked (the delivery model, Intel SDM order)"))
        parts += _model_lines(report.model)
        parts.append(Text(""))
    if report.diagnosis:
        parts.append(_heading("diagnosis (most likely first)"))
        for n, cause in enumerate(report.diagnosis, start=1):
            parts.append(_cause(n, cause))
        parts.append(Text(""))
    elif report.outcome == "no-fault" and report.stop.reason != "timeout":
        parts.append(Text("nothing to diagnose: vector 8 never fired during the run"))
        parts.append(Text(""))
    if report.evidence:
        parts.append(_heading("evidence"))
        parts += [bullet(line) for line in report.evidence]
        parts.append(Text(""))
    if report.disagreements:
        parts.append(_heading("where the evidence disagrees (emulator quirks)"))
        parts += [bullet(line, "! ", style="yellow") for line in report.disagreements]
        parts.append(Text(""))
    if report.relevant:
        parts.append(_differences(report.relevant, title="differences that matter"))
    if report.irrelevant:
        ref = report.reference or "the reference"
        parts.append(
            _differences(report.irrelevant, title=f"differences from {ref} that did not matter")
        )
    if report.notes:
        parts += [bullet(line, "note: ", style="dim") for line in report.notes]
    return Group(*parts)


def render_tss_diff(diff: TssDiff) -> RenderableType:
    """The TSS diff: what is needed now, each difference, then notes."""
    parts: list[RenderableType] = []
    head = Text("diff-tss: ", style="bold")
    head.append(f"{diff.actual_arch} against {diff.reference} ({diff.reference_arch})")
    parts.append(head)
    need = Text("the CPU needs the TSS now: ", style="bold")
    need.append("yes" if diff.needs.any else "no", style="bold red" if diff.needs.any else "green")
    need.append(f" — {diff.needs.reason()}")
    parts.append(need)
    if diff.differences:
        mattering = len(diff.mattering)
        parts.append(
            Text(
                f"{len(diff.differences)} difference(s), {mattering} that matter"
                + (" now" if mattering else ": none matters now")
            )
        )
        parts.append(_differences(diff.differences, title=None or ""))
    else:
        parts.append(Text("no differences in TR, the TSS descriptor or the TSS"))
    parts += [bullet(line, "note: ", style="dim") for line in diff.notes]
    return Group(*parts)
