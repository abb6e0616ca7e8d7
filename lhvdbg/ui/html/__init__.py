"""Self-contained HTML pages: ``--html FILE`` of ``break-on-df``, ``diff-tss``, ``show``,
``trace`` and ``compare``.

One file, inline CSS and SVG, no script and no network (a Content-Security-Policy forbids
every fetch, and the page names no URL): the verdict, the chain as a timeline, a map of the
256 vectors (exceptions, where the 8259 PICs and the local APIC deliver, gate present / not
present / beyond the IDT limit), the GDT and IDT with the entries that have a problem
marked and why, the TSS beside the reference, the causes with evidence and fix, the QEMU
version and accelerator. Built from the report's data (:class:`Report` and its JSON form,
the snapshot's decoded tables); nothing here reads a machine.
"""

from __future__ import annotations

from collections.abc import Iterable

from lhvdbg.diagnose.report import Report
from lhvdbg.diagnose.tss_diff import TssDiff
from lhvdbg.state.snapshot import Provenance, Snapshot
from lhvdbg.state.system import tables_from_reader
from lhvdbg.ui.html.chain import chain_rows, chain_section
from lhvdbg.ui.html.history import comparison_page, trace_page
from lhvdbg.ui.html.markup import collect_problems, esc, meta, page
from lhvdbg.ui.html.model import failing_fix_fields, model_section
from lhvdbg.ui.html.sections import (
    causes_section,
    findings_section,
    gdt_section,
    idt_section,
    list_section,
    tss_section,
)
from lhvdbg.ui.html.vectors import vector_map
from lhvdbg.x86.checks import check_system
from lhvdbg.x86.tables import SystemTables

__all__ = [
    "comparison_page",
    "report_page",
    "snapshot_page",
    "trace_page",
    "tss_diff_page",
]


def tables_of(snapshot: Snapshot | None, tables: SystemTables | None) -> SystemTables | None:
    if tables is not None or snapshot is None:
        return tables
    return tables_from_reader(snapshot.cpu, snapshot.read)


def report_page(
    report: Report,
    *,
    snapshot: Snapshot | None = None,
    tables: SystemTables | None = None,
    reference: Snapshot | None = None,
) -> str:
    """The ``break-on-df`` / ``diagnose`` report as one HTML page."""
    data = report.to_json()
    tables = tables_of(snapshot, tables)
    chain_vectors = [r.vector for r in chain_rows(data) if r.vector is not None]
    differences = (*report.relevant, *report.irrelevant)
    problems = collect_problems(report.findings, data["diagnosis"], differences)
    for field, why in failing_fix_fields(data.get("model")):
        problems.add(field, "error", why)
    stop = report.stop
    outcome = report.outcome
    body = [
        f"<h1>lhvdbg report: {esc(outcome)}</h1>",
        meta(
            [
                ("arch", report.arch),
                ("accelerator", report.accel or "none (offline)"),
                ("QEMU", report.qemu_version or "unknown"),
                ("interrupt log", "yes" if report.int_log else "no"),
            ]
        ),
        meta(
            [
                ("kernel", report.kernel),
                ("stop", f"{stop.reason}" + (f" ({stop.detail})" if stop.detail else "")),
            ]
        ),
        f'<div class="verdict {esc(outcome)}"><div class="outcome">{esc(outcome)}</div>'
        f'<div class="text">{esc(report.verdict)}</div></div>',
        chain_section(data),
        causes_section(data["diagnosis"]),
        model_section(data.get("model")),
        vector_map(tables, snapshot, chain_vectors, problems.vectors()),
        gdt_section(tables, problems),
        idt_section(tables, problems, chain_vectors),
        tss_section(tables, reference, report.reference, differences),
        list_section("evidence", "evidence", report.evidence),
        list_section(
            "where the evidence disagrees (emulator quirks)", "disagreements", report.disagreements
        ),
        findings_section(report.findings),
        list_section("notes", "notes", report.notes),
    ]
    return page(f"lhvdbg: {report.verdict}", [b for b in body if b])


def tss_diff_page(
    diff: TssDiff,
    *,
    snapshot: Snapshot,
    reference: Snapshot,
    events_vectors: Iterable[int] = (),
) -> str:
    """The ``diff-tss`` comparison as one HTML page (with the target's tables)."""
    tables = tables_of(snapshot, None)
    assert tables is not None
    chain_vectors = list(events_vectors)
    findings = check_system(tables, snapshot.cpu, pic=snapshot.pic, vectors_in_use=chain_vectors)
    problems = collect_problems(findings, (), diff.differences)
    need = "yes" if diff.needs.any else "no"
    verdict = (
        f"{len(diff.differences)} difference(s), {len(diff.mattering)} that matter now; "
        f"the CPU needs the TSS now: {need} — {diff.needs.reason()}"
    )
    css = "double-fault" if diff.mattering else "no-fault"
    p = snapshot.provenance
    body = [
        f"<h1>lhvdbg diff-tss: {esc(diff.actual_arch)} against {esc(diff.reference)} "
        f"({esc(diff.reference_arch)})</h1>",
        *_provenance(p, ("arch", snapshot.arch)),
        f'<div class="verdict {css}"><div class="outcome">diff-tss</div>'
        f'<div class="text">{esc(verdict)}</div></div>',
        tss_section(tables, reference, diff.reference, diff.differences),
        vector_map(tables, snapshot, chain_vectors, problems.vectors()),
        gdt_section(tables, problems),
        idt_section(tables, problems, chain_vectors),
        findings_section(findings),
        list_section("notes", "notes", diff.notes),
    ]
    return page(f"lhvdbg diff-tss: {verdict}", [b for b in body if b])


def _provenance(p: Provenance, first: tuple[str, object]) -> list[str]:
    """A snapshot's provenance as two meta lines: ``first``, the accelerator, QEMU and how
    it stopped; then the kernel and when it was captured."""
    return [
        meta(
            [
                first,
                ("accelerator", p.accel or "none (offline)"),
                ("QEMU", p.qemu_version or "unknown"),
                ("stopped", p.stop_reason),
            ]
        ),
        meta([("kernel", p.kernel_path), ("captured", p.captured_at)]),
    ]


def snapshot_page(snapshot: Snapshot, *, label: str) -> str:
    """``show``: a snapshot's vector map, GDT, IDT and TSS as one HTML page."""
    tables = tables_of(snapshot, None)
    assert tables is not None
    findings = check_system(tables, snapshot.cpu, pic=snapshot.pic)
    problems = collect_problems(findings)
    p = snapshot.provenance
    cpu = snapshot.cpu
    verdict_css = "double-fault" if any(f.severity == "error" for f in findings) else "no-fault"
    summary = (
        f"{snapshot.arch}, {cpu.mode} mode, CPL {cpu.cpl}, RIP {cpu.ip:#x}; "
        f"{len(findings)} table check finding(s)"
    )
    body = [
        f"<h1>lhvdbg show: {esc(label)}</h1>",
        *_provenance(p, ("source", p.source)),
        f'<div class="verdict {verdict_css}"><div class="outcome">snapshot</div>'
        f'<div class="text">{esc(summary)}</div></div>',
        vector_map(tables, snapshot, (), problems.vectors()),
        gdt_section(tables, problems),
        idt_section(tables, problems, ()),
        tss_section(tables, None, None, ()),
        findings_section(findings),
    ]
    return page(f"lhvdbg show: {label}", [b for b in body if b])
