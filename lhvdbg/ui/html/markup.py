"""HTML building blocks: escaping, the page frame, tables, and problems by table entry."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from lhvdbg.diagnose.tss_diff import Difference
from lhvdbg.ui.html._style import CSP, CSS
from lhvdbg.x86.checks import Finding

_ENTRY = re.compile(r"^(gdt|idt)\[0x([0-9a-f]+)(?:-0x([0-9a-f]+))?\]", re.IGNORECASE)
_SEVERITY_RANK = {"error": 0, "matters": 0, "warning": 1, "info": 2}


def esc(value: object) -> str:
    return escape(str(value), quote=True)


def hexval(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:#x}"
    return str(value)


# --- problems by table entry --------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """Why an entry is highlighted: a severity (``error``/``warning``/``info``) and text."""

    severity: str
    why: str


class Problems:
    """The problems of GDT slots (by selector) and IDT vectors, from findings, causes'
    fix fields and the differences from the reference."""

    def __init__(self) -> None:
        self.by_entry: dict[tuple[str, int], list[Problem]] = {}

    def add(self, entry: str, severity: str, why: str) -> None:
        """Attach ``why`` to every slot ``entry`` names (``idt[0x20]``, ``idt[0x20-0x2f]``,
        ``gdt[0x10].type``); other entries (``tr``, ``tss.rsp0``) are ignored."""
        match = _ENTRY.match(entry.strip())
        if match is None:
            return
        table, first = match.group(1).lower(), int(match.group(2), 16)
        last = int(match.group(3), 16) if match.group(3) else first
        step = 8 if table == "gdt" else 1
        for key in range(first, last + 1, step):
            problems = self.by_entry.setdefault((table, key), [])
            if all(p.why != why for p in problems):
                problems.append(Problem(severity, why))

    def of(self, table: str, key: int) -> list[Problem]:
        """The problems of one slot, most severe first."""
        found = self.by_entry.get((table, key), [])
        return sorted(found, key=lambda p: _SEVERITY_RANK.get(p.severity, 3))

    def vectors(self) -> set[int]:
        """IDT vectors with a problem."""
        return {key for table, key in self.by_entry if table == "idt"}


def collect_problems(
    findings: Iterable[Finding],
    causes: Iterable[Mapping[str, Any]] = (),
    differences: Iterable[Difference] = (),
) -> Problems:
    problems = Problems()
    for finding in findings:
        problems.add(finding.entry, finding.severity, f"{finding.id}: {finding.message}")
    for cause in causes:
        for field_name in cause.get("fix_fields", []) or []:
            problems.add(
                str(field_name), "error", f"cause {cause['id']}: the fix changes {field_name}"
            )
    for diff in differences:
        severity = "matters" if diff.matters else "info"
        problems.add(diff.field, severity, f"{diff.field} differs: {diff.explanation}")
    return problems


# --- page frame ---------------------------------------------------------------------


def page(title: str, body: Sequence[str]) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n<footer>written by lhvdbg; one self-contained file: no script, no network"
        "</footer>\n</body>\n</html>\n"
    )


def meta(pairs: Iterable[tuple[str, object]]) -> str:
    parts = [f"<b>{esc(k)}</b> {esc(v)}" for k, v in pairs if v not in (None, "")]
    return f'<p class="meta">{" · ".join(parts)}</p>'


def html_table(
    columns: Sequence[str], rows: Iterable[str], *, css: str = "", caption: str = ""
) -> str:
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return (
        f'<table class="{css}">{cap}<thead><tr>{head}</tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table>"
    )


def html_row(cells: Sequence[str], *, css: str = "", attrs: str = "", raw: bool = False) -> str:
    tds = "".join(f"<td>{c if raw else esc(c)}</td>" for c in cells)
    return f'<tr class="{css}"{attrs}>{tds}</tr>'
