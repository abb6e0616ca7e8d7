"""The page's sections other than the chain and the vector map: GDT, IDT, the TSS beside
the reference, causes, differences, table checks, plain lists."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from lhvdbg.diagnose.tss_diff import Difference
from lhvdbg.state.snapshot import Snapshot
from lhvdbg.state.system import tables_from_reader
from lhvdbg.ui.html.markup import Problem, Problems, esc, hexval, html_row, html_table
from lhvdbg.ui.tables import GDT_COLUMNS, gdt_cells, groups, idt_cells
from lhvdbg.x86.checks import Finding
from lhvdbg.x86.layout import Decoded
from lhvdbg.x86.tables import SystemTables
from lhvdbg.x86.vectors import vector_name


def _problem_cells(problems: list[Problem]) -> tuple[str, str]:
    """``(row css, why html)``."""
    if not problems:
        return "", ""
    severity = problems[0].severity
    why = "<br>".join(
        f'<span class="sev {esc(p.severity)}">{esc(p.severity)}</span> {esc(p.why)}'
        for p in problems
    )
    return f"problem {severity}", why


def gdt_section(tables: SystemTables | None, problems: Problems) -> str:

    gdt = tables.gdt if tables is not None else None
    if gdt is None:
        why = (tables.unavailable.get("gdt") if tables is not None else None) or "not captured"
        return f'<h2 id="gdt">GDT</h2><p class="prose">GDT: {esc(why)}</p>'
    rows = []
    for group in groups(gdt.entries, lambda e: e.kind == "empty"):
        first, last = group[0], group[-1]
        if len(group) > 1:
            cells = [f"{first.index}-{last.index}", f"{first.offset:#06x}-{last.offset:#06x}"]
            cells += [f"{len(group)} empty", "", "", "", "", "", "", ""]
            rows.append(html_row(cells, css="dim"))
            continue
        css, why = _problem_cells(problems.of("gdt", first.offset))
        if not css and first.kind in ("beyond-limit", "second-half", "empty"):
            css = "dim"
        note = esc(first.note) if first.note else ""
        cells = [esc(c) for c in gdt_cells(first)] + [why or note]
        rows.append(
            html_row(
                cells, css=f"gdt-row {css}", attrs=f' data-selector="{first.offset}"', raw=True
            )
        )
    title = f"GDT base {gdt.base:#x} limit {gdt.limit:#x} ({gdt.mode})"
    return f'<h2 id="gdt">{esc(title)}</h2>' + html_table(
        (*GDT_COLUMNS, "problem / note"), rows, css="gdt"
    )


def idt_section(
    tables: SystemTables | None, problems: Problems, chain_vectors: Iterable[int]
) -> str:

    idt = tables.idt if tables is not None else None
    if idt is None:
        why = (tables.unavailable.get("idt") if tables is not None else None) or "not captured"
        return f'<h2 id="idt">IDT</h2><p class="prose">IDT: {esc(why)}</p>'
    ia32e = idt.mode == "ia32e"
    wanted = {e.vector for e in idt.entries if e.kind == "gate"}
    wanted |= problems.vectors() | set(chain_vectors)
    columns = ["vec", "name", "sel", "offset", "type", "dpl", "P"] + (["ist"] if ia32e else [])
    rows = []
    for vector in sorted(wanted):
        entry = idt.gate(vector)
        css, why = _problem_cells(problems.of("idt", vector))
        if entry is None:
            state = "beyond the IDT limit" if not idt.covers(vector) else "not captured"
            cells = [esc(f"{vector:#04x}"), esc(vector_name(vector)), esc(state)]
            cells += [""] * (len(columns) - 3) + [why]
        else:
            cells = [esc(c) for c in idt_cells(entry, ia32e)] + [why]
            if not css and entry.kind != "gate":
                css = "dim"
        rows.append(
            html_row(cells, css=f"idt-row {css}", attrs=f' data-vector="{vector}"', raw=True)
        )
    title = f"IDT base {idt.base:#x} limit {idt.limit:#x} ({idt.mode})"
    lead = (
        '<p class="prose">present gates, and every vector that is in the chain or has a problem</p>'
    )
    return f'<h2 id="idt">{esc(title)}</h2>{lead}' + html_table(
        (*columns, "problem"), rows, css="idt"
    )


def _tss_value(decoded: Decoded | None, name: str) -> str:
    if decoded is None or not any(f.name == name for f in decoded.layout.fields):
        return "-"
    value = decoded.values.get(name)
    if value is None:
        return "beyond limit"
    width = decoded.layout.field(name).width
    return str(value) if width == 1 else f"{value:#x}"


def _tss_names(decoded: Sequence[Decoded | None], differences: Sequence[Difference]) -> list[str]:
    """TR and descriptor fields that differ, then the TSS fields of either side (reserved
    ones only when set or different), then differing fields neither side decodes."""
    marked = {d.field for d in differences}
    outside = [d.field for d in differences if not d.field.startswith("tss.")]
    names: list[str] = []
    for body in decoded:
        if body is None:
            continue
        for f in body.layout.fields:
            if f.reserved and not body.values.get(f.name) and f"tss.{f.name}" not in marked:
                continue
            names.append(f"tss.{f.name}")
    return [*dict.fromkeys([*outside, *names, *(d.field for d in differences)])]


def _tr_line(label: str, tables: SystemTables) -> str:
    tr = tables.tr
    text = f"{label}: TR selector {tr.selector:#06x}, base {tr.base:#x}, limit {tr.limit:#x}"
    return text + ("" if tables.tr_loaded else " (reset state: ltr never ran)")


def tss_section(
    tables: SystemTables | None,
    reference: Snapshot | None,
    reference_name: str | None,
    differences: Sequence[Difference],
) -> str:
    """The TSS (and TR, the TSS descriptor) beside the reference's, field by field; the
    differences marked ``matters`` / ``harmless`` with why."""
    actual = tables.tss if tables is not None else None
    ref_tables = None if reference is None else tables_from_reader(reference.cpu, reference.read)
    ref_tss = ref_tables.tss if ref_tables is not None else None
    marks = {d.field: d for d in differences}
    rows = []
    for name in _tss_names((actual, ref_tss), differences):
        diff = marks.get(name)
        short = name.removeprefix("tss.")
        ref_text, act_text = _tss_value(ref_tss, short), _tss_value(actual, short)
        why, css = "", ""
        if diff is not None:
            ref_text, act_text = hexval(diff.reference), hexval(diff.actual)
            verdict = "matters" if diff.matters else "harmless"
            why = f'<span class="sev {verdict}">{verdict}</span> {esc(diff.explanation)}'
            css = "problem matters" if diff.matters else "problem info"
        cells = [esc(name), esc(act_text), why]
        if reference is not None:
            cells.insert(1, esc(ref_text))
        rows.append(html_row(cells, css=f"tss-row {css}", raw=True))
    ref_label = reference_name or "reference"
    head = f'<h2 id="tss">TSS{" beside the reference" if reference is not None else ""}</h2>'
    lines = [_tr_line("this target", tables)] if tables is not None else []
    if ref_tables is not None:
        lines.append(_tr_line(ref_label, ref_tables))
    lead = "".join(f'<p class="meta">{esc(line)}</p>' for line in lines)
    if not rows:
        why = (tables.unavailable.get("tss") if tables is not None else None) or "no TSS"
        return head + lead + f'<p class="prose">{esc(why)}</p>'
    columns = ["field", "this target", "difference"]
    if reference is not None:
        columns.insert(1, ref_label)
    return head + lead + html_table(columns, rows, css="tss")


def causes_section(causes: Sequence[Mapping[str, Any]]) -> str:
    if not causes:
        return ""
    items = []
    for cause in causes:
        chips = "".join(f"<code>{esc(f)}</code>" for f in cause.get("fix_fields", []) or [])
        check = f" · check <code>{esc(cause['check'])}</code>" if cause.get("check") else ""
        evidence = "".join(f"<li>{esc(line)}</li>" for line in cause.get("evidence", []))
        reference = (
            f'<p class="meta">reference: {esc(cause["reference"])}</p>'
            if cause.get("reference")
            else ""
        )
        items.append(
            f'<li class="cause" data-cause="{esc(cause["id"])}">'
            f'<span class="cause-id">[{esc(cause["id"])}]</span> {esc(cause["summary"])} '
            f'<span class="meta">(confidence: {esc(cause["confidence"])}{check})</span>'
            f'<ul class="evidence">{evidence}</ul>'
            f'<div class="fix"><b>fix:</b> {esc(cause["fix"])}'
            + (f'<div class="chips">changes: {chips}</div>' if chips else "")
            + f"</div>{reference}</li>"
        )
    return (
        f'<h2 id="causes">causes (most likely first)</h2><ol class="causes">{"".join(items)}</ol>'
    )


def list_section(title: str, anchor: str, lines: Sequence[str]) -> str:
    if not lines:
        return ""
    items = "".join(f"<li>{esc(line)}</li>" for line in lines)
    return f'<h2 id="{anchor}">{esc(title)}</h2><ul class="prose">{items}</ul>'


def findings_section(findings: Sequence[Finding]) -> str:
    if not findings:
        return ""
    rows = [
        html_row(
            [
                f'<span class="sev {esc(f.severity)}">{esc(f.severity)}</span>',
                esc(f.id),
                esc(f.entry),
                esc(f.message),
            ],
            raw=True,
        )
        for f in findings
    ]
    return '<h2 id="findings">table checks</h2>' + html_table(
        ("severity", "id", "entry", "message"), rows, css="findings"
    )
