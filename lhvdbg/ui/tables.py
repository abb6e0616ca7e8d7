"""Rendering of decoded layouts and system tables (GDT, IDT, TSS, page walks, findings).

One generic formatter for any :class:`~lhvdbg.x86.layout.Decoded` (fields, bits, value,
meaning; changed fields marked when a previous value is given), plus whole-table views.
Plain text must read well with colour off: changes carry a ``*`` marker, not only colour.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import groupby
from typing import TypeVar

from rich import box
from rich.console import (
    Console,
    ConsoleOptions,
    Group,
    JustifyMethod,
    RenderableType,
    RenderResult,
)
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from lhvdbg.x86.checks import Finding
from lhvdbg.x86.layout import Decoded
from lhvdbg.x86.paging import PageWalk
from lhvdbg.x86.segments import limit_bytes
from lhvdbg.x86.tables import NO_IDT_YET, GdtEntry, GdtTable, IdtEntry, IdtTable
from lhvdbg.x86.vectors import FIRST_USER_VECTOR, vector_name

_T = TypeVar("_T")

_CHANGED = "bold yellow"
_SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


class FitTable(Table):
    """A rich Table that keeps words whole when it must narrow its columns.

    rich narrows the widest wrapping column first, below its longest word if need be
    (``kernel_main+0x17`` / ``1``), and cuts ``no_wrap`` columns with an ellipsis when the
    table cannot fit, or squeezes a prose column into a ribbon beside a wide ``no_wrap``
    one. This one, when a column would be cut or squeezed so, first puts two spaces
    between columns instead of three; if that is not enough, lets every column wrap
    between words; then it gives each column back up to its longest word, taken from the
    columns that still have room beyond theirs. A word is cut only when no column has
    room left.
    """

    _declared: tuple[tuple[bool, ...], tuple[int, int, int, int]] | None = None
    _COMPACT = (0, 1, 0, 0)  # two spaces between columns instead of three
    _PROSE_MIN = 24  # a wrapping column narrower than this reads as a ribbon
    _FAST_ROWS = (
        40  # from this many rows on, a fitting table of one-line cells is laid out directly
    )

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        fast = self._fast_layout(options.max_width) if self.row_count >= self._FAST_ROWS else None
        if fast is not None:
            yield fast
            return
        yield from super().__rich_console__(console, options)

    def _fast_layout(self, max_width: int) -> Text | None:
        """The table as rich would lay it out — columns as wide as their widest cell, three
        spaces apart, a rule under the header — written directly (rich spends ~2 ms a row
        measuring and wrapping: ``idt all`` took half a second). Only for this class's
        borderless layout, ``no_wrap`` columns and plain one-line cells that fit; None
        otherwise (rich does it)."""
        if self.box is not box.SIMPLE_HEAD or self.show_edge or self.pad_edge:
            return None
        if self.show_footer or not self.show_header or self.padding != (0, 1, 0, 1):
            return None
        columns: list[list[str]] = []
        for column in self.columns:
            if not column.no_wrap or column.justify != "left":
                return None
            cells: list[str] = []
            for cell in column._cells:
                if isinstance(cell, str):
                    text = cell
                elif isinstance(cell, Text) and not cell.spans and not cell.style:
                    text = cell.plain
                else:
                    return None
                if "\n" in text or "[" in text:  # a line break, or markup rich would read
                    return None
                cells.append(text)
            columns.append(cells)
        headers = [str(c.header) for c in self.columns]
        widths = [
            max([len(h), *(len(t) for t in cells)])
            for h, cells in zip(headers, columns, strict=True)
        ]
        total = sum(widths) + 3 * (len(widths) - 1)
        if total > max_width:
            return None

        def line(cells: Sequence[str]) -> str:
            return "   ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

        out = Text(no_wrap=True, overflow="ignore", end="\n")
        if self.title:
            out.append(
                str(self.title).ljust(total if self.title_justify == "left" else 0),
                style=self.title_style or "",
            )
            out.append("\n")
        out.append(line(headers), style=self.header_style or "")
        out.append("\n")
        out.append("─" * total, style=self.border_style or "")
        for index, row in enumerate(self.rows):
            out.append("\n")
            out.append(line([cells[index] for cells in columns]), style=row.style or "")
        return out

    def _calculate_column_widths(self, console: Console, options: ConsoleOptions) -> list[int]:
        if self._declared is None:
            self._declared = (tuple(bool(c.no_wrap) for c in self.columns), self.padding)
        no_wraps, padding = self._declared  # what the caller asked for, at every render
        for compact, wrap_all in ((False, False), (True, False), (True, True)):
            self.padding = self._COMPACT if compact else padding
            for column, no_wrap in zip(self.columns, no_wraps, strict=True):
                column.no_wrap = no_wrap and not wrap_all
            ranges = [self._measure_column(console, options, c) for c in self.columns]
            widths = list(super()._calculate_column_widths(console, options))
            if not self._cramped(widths, ranges, no_wraps, options.max_width):
                break
        minima = [r.minimum for r in ranges]
        for i, minimum in enumerate(minima):
            while widths[i] < minimum:
                slack = [w - m for w, m in zip(widths, minima, strict=True)]
                donor = max(range(len(widths)), key=lambda j: slack[j])
                if slack[donor] <= 0:
                    break
                step = min(minimum - widths[i], slack[donor])
                widths[donor] -= step
                widths[i] += step
        return widths

    def _cramped(
        self,
        widths: list[int],
        ranges: list[Measurement],
        declared_no_wrap: tuple[bool, ...],
        max_width: int,
    ) -> bool:
        """Whether these widths cut a ``no_wrap`` column, cannot hold every column's
        longest word, or squeeze a prose column into a ribbon while a ``no_wrap`` column
        holds several words that could wrap instead."""
        rows = list(zip(self.columns, widths, ranges, declared_no_wrap, strict=True))
        if any(c.no_wrap and w < r.maximum for c, w, r, _ in rows):
            return True
        if sum(r.minimum for r in ranges) > max_width:
            return True
        ribbon = any(
            not declared and w < min(r.maximum, self._PROSE_MIN) for _, w, r, declared in rows
        )
        return ribbon and any(c.no_wrap and r.minimum < r.maximum for c, _, r, _ in rows)


def bullet(
    text: str | Text, marker: str = "- ", *, indent: int = 0, style: str = ""
) -> RenderableType:
    """``marker text`` whose wrapped lines stay indented under the text, not the marker."""
    grid = Table.grid(padding=0)
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    body = text if isinstance(text, Text) else Text(text, style=style)
    grid.add_row(Text(" " * indent + marker, style=style), body)
    return grid


def _table(title: str | None = None) -> Table:
    """A borderless table; add data columns with :func:`_col` and prose with ``_prose``."""
    return FitTable(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        show_edge=False,
        title_style="bold",
    )


def plain(text: str, style: str = "") -> Text:
    """``text`` as a renderable with no markup interpretation."""
    return Text(text, style=style)


def _col(table: Table, name: str, *, justify: JustifyMethod = "left") -> None:
    table.add_column(name, no_wrap=True, justify=justify)


def _prose(table: Table, name: str) -> None:
    table.add_column(name, ratio=1, overflow="fold")


def _value_text(decoded: Decoded, name: str) -> str:
    value = decoded.values.get(name)
    if value is None:
        return "- (beyond limit)"
    f = decoded.layout.field(name)
    enum_name = decoded.name_of(name)
    shown = str(value) if f.width == 1 else f"{value:#x}"
    return f"{shown}  {enum_name}" if enum_name is not None else shown


def render_decoded(
    decoded: Decoded,
    previous: Decoded | None = None,
    *,
    title: str | None = None,
    show_reserved: bool = False,
) -> RenderableType:
    """A table of every field: name, bits, value (with enum name), meaning.

    With ``previous``, changed fields are highlighted and marked ``*`` and a ``was`` column
    shows the old value. Reserved fields appear only when non-zero or ``show_reserved``.
    """
    layout = decoded.layout
    digits = (layout.size_bits + 3) // 4
    heading = title or f"{layout.name} = {decoded.raw:#0{digits + 2}x}"
    table = _table(heading)
    _col(table, "field")
    _col(table, "bits", justify="right")
    _col(table, "value")
    if previous is not None:
        _col(table, "was")
    _prose(table, "meaning")
    for f in layout.fields:
        value = decoded.values.get(f.name)
        old = previous.values.get(f.name) if previous is not None else None
        changed = previous is not None and value != old
        if f.reserved and not value and not show_reserved and not changed:
            continue
        style = _CHANGED if changed else ""
        name = f"*{f.name}" if changed else f.name
        row: list[RenderableType] = [
            Text(name, style=style),
            f.bits_text,
            Text(_value_text(decoded, f.name), style=style),
        ]
        if previous is not None:
            row.append(_value_text(previous, f.name) if changed else "")
        row.append(f.meaning)
        table.add_row(*row)
    extra = decoded.unknown_bits
    if extra:
        note = Text(f"undeclared bits set: {extra:#x}", style="yellow")
        return Group(table, note)
    return table


def _flags_text(desc: Decoded) -> str:
    v = desc.values
    parts = [name.upper() for name in ("l", "db", "g", "avl") if v.get(name)]
    if v.get("db"):
        parts[parts.index("DB")] = "D"
    return " ".join(parts)


def _short_type(desc: Decoded) -> str:
    """The type name without the ``code,``/``data,`` prefix the kind column already gives."""
    name = desc.name_of("type") or ""
    return name.split(", ", 1)[1] if desc.values["s"] and ", " in name else name


def _gdt_row(entry: GdtEntry) -> list[str]:
    index, sel = str(entry.index), f"{entry.offset:#06x}"
    desc = entry.decoded
    if desc is None or entry.kind in ("null", "empty"):
        return [index, sel, entry.kind, "", "", "", "", "", ""]
    v = desc.values
    if "offset" in v:  # a call or task gate in the GDT: show its target instead
        where, size = f"{v['selector']:#06x}:{v['offset']:#x}", ""
    else:
        where, size = f"{v['base']:#x}", f"{limit_bytes(desc):#x}"
    return [
        index,
        sel,
        entry.kind,
        where,
        size,
        f"{v['type']:#x} {_short_type(desc)}",
        str(v["dpl"]),
        "P" if v["present"] else "-",
        _flags_text(desc),
    ]


def idt_cells(entry: IdtEntry, ia32e: bool) -> list[str]:
    """One IDT slot as the IDT view's cells: vec, name, sel, offset, type, dpl, P (, ist)."""
    v = entry.decoded.values
    width = 16 if ia32e else 8
    row = [
        f"{entry.vector:#04x}",
        vector_name(entry.vector),
        f"{v['selector']:#06x}",
        f"{v['offset']:#0{width + 2}x}",
        f"{v['type']:#x} {entry.decoded.name_of('type')}",
        str(v["dpl"]),
        "P" if v["present"] else ("beyond limit" if entry.kind == "beyond-limit" else "-"),
    ]
    if ia32e:
        row.append(str(v.get("ist", 0)))
    return row


GDT_COLUMNS = ("#", "sel", "kind", "base", "limit", "type", "dpl", "P", "flags")


def gdt_cells(entry: GdtEntry) -> list[str]:
    """One GDT slot as the GDT view's cells (:data:`GDT_COLUMNS`)."""
    return _gdt_row(entry)


def groups(entries: Iterable[_T], blank: Callable[[_T], bool]) -> Iterator[list[_T]]:
    """``entries`` one by one, except that a run of two or more blank ones comes as one."""
    for is_blank, run in groupby(entries, key=blank):
        items = list(run)
        if is_blank and len(items) > 1:
            yield items
        else:
            yield from ([item] for item in items)


def _title(name: str, table: GdtTable | IdtTable) -> str:
    title = f"{name} base {table.base:#x} limit {table.limit:#x} ({table.mode})"
    return title + " [truncated]" if table.truncated else title


def with_note(note: str | None, renderable: RenderableType) -> RenderableType:
    """``renderable`` under a one-line ``note`` (none when ``note`` is None)."""
    return renderable if note is None else Group(plain(note, style="yellow"), renderable)


def render_gdt(table: GdtTable) -> RenderableType:
    """The GDT: index, selector, kind, base, byte limit, type, DPL, P, flags, note.

    A run of empty (all-zero) slots is one row: ``1-8191  0x0008-0xfff8  8191 empty``.
    """
    out = _table(_title("GDT", table))
    for col in GDT_COLUMNS:
        _col(out, col)
    notes: list[RenderableType] = []
    for group in groups(table.entries, lambda e: e.kind == "empty"):
        first, last = group[0], group[-1]
        if len(group) > 1:
            span = f"{first.index}-{last.index}", f"{first.offset:#06x}-{last.offset:#06x}"
            out.add_row(*span, f"{len(group)} empty", style="dim")
            continue
        style = "dim" if first.kind in ("beyond-limit", "second-half", "empty") else None
        out.add_row(*_gdt_row(first), style=style)
        if first.note:
            notes.append(plain(f"  [{first.index}] {first.offset:#06x}: {first.note}"))
    return Group(out, *notes) if notes else out


def render_idt(
    table: IdtTable,
    only_present: bool = True,
    *,
    vectors: Iterable[int] | None = None,
    symbols: Mapping[str, int] | None = None,
    collapse: bool = False,
) -> RenderableType:
    """The IDT: vector, name, selector, offset (with its symbol), type, DPL, P, IST.

    Present gates by default; ``only_present=False`` lists every slot. ``collapse``: a run
    of equal gates (one handler, type, DPL, IST) or of not-present slots is one row. Without
    it, listing every slot still folds a run of empty (all-zero) gates.
    """
    from lhvdbg.state.symbols import symbolize

    wanted = set(vectors) if vectors is not None else None
    if table.real_mode_ivt:  # the IVT's 4-byte vectors decoded as gates would be noise
        heading = Text(f"IDT base {table.base:#x} limit {table.limit:#x}", style="bold")
        return Group(heading, Text(NO_IDT_YET, style="yellow"))
    out = _table(_title("IDT", table))
    ia32e = table.mode == "ia32e"
    cols = ["vec", "name", "sel", "offset", "type", "dpl", "P"] + (["ist"] if ia32e else [])
    for col in cols:
        _col(out, col)
    if wanted is not None:
        entries = [e for e in table.entries if e.vector in wanted]
    elif only_present and not (collapse and any(e.kind == "gate" for e in table.entries)):
        entries = [e for e in table.entries if e.kind == "gate"]
    else:
        entries = list(table.entries)

    def cells(entry: IdtEntry) -> list[str]:
        row = idt_cells(entry, ia32e)
        name = symbolize(entry.decoded.values["offset"], symbols) if symbols else None
        if name and entry.kind == "gate":
            row[3] += f" <{name}>"
        return row

    if collapse and wanted is None and any(e.kind == "gate" for e in entries):
        for items in _idt_runs(entries):
            first, last = items[0], items[-1]
            if len(items) == 1:
                out.add_row(*cells(first), style="dim" if first.kind != "gate" else None)
                continue
            span = f"{first.vector:#04x}-{last.vector:#04x}"
            if first.kind != "gate":
                blank = [""] * (len(cols) - 3)
                out.add_row(span, f"{len(items)} not present", *blank, "-", style="dim")
                continue
            row = cells(first)
            stride = last.decoded.values["offset"] - first.decoded.values["offset"]
            if stride:
                row[1] = f"{len(items)} stubs"
                row[3] += " .. " + cells(last)[3]
            else:
                row[1] = f"{len(items)} equal gates"
            row[0] = span
            out.add_row(*row)
        return out
    fold = wanted is None and not only_present
    for group in groups(entries, lambda e: fold and e.kind != "gate" and not any(e.raw)):
        first, last = group[0], group[-1]
        if len(group) > 1:
            span = f"{first.vector:#04x}-{last.vector:#04x}"
            out.add_row(span, "", "", "", f"{len(group)} empty gates", "", "-", style="dim")
            continue
        out.add_row(*cells(first), style="dim" if first.kind != "gate" else None)
    if not entries:
        return Group(out, Text("(no gates to show)"))
    return out


def _gate_attributes(entry: IdtEntry) -> tuple[object, ...] | None:
    """A present gate's selector, type, DPL and IST (None for a slot that is not one)."""
    if entry.kind != "gate":
        return None
    v = entry.decoded.values
    return (v["selector"], v["type"], v["dpl"], v.get("ist", 0))


def _idt_runs(entries: Sequence[IdtEntry]) -> Iterator[list[IdtEntry]]:
    """Runs to show as one row: slots that are not present gates; gates alike but for a
    handler address that is equal, or (from vector 0x20 on, where no vector has a name of
    its own) advances by one stride through a table of stubs."""
    run: list[IdtEntry] = []
    stride: int | None = None

    def offset(entry: IdtEntry) -> int:
        return int(entry.decoded.values["offset"])

    for entry in entries:
        if run:
            last = run[-1]
            same = _gate_attributes(entry) == _gate_attributes(last)
            step = offset(entry) - offset(last) if entry.kind == "gate" and same else None
            fits = same and (
                entry.kind != "gate"
                or (step == 0 and stride in (None, 0))
                or (
                    last.vector >= FIRST_USER_VECTOR
                    and step is not None
                    and step > 0
                    and stride in (None, step)
                )
            )
            if fits:
                stride = step if entry.kind == "gate" else None
                run.append(entry)
                continue
            yield run
        run, stride = [entry], None
    if run:
        yield run


def render_tss(decoded: Decoded, *, base: int | None = None) -> RenderableType:
    """A TSS body: field, byte offset, value, meaning; fields beyond the limit say so."""
    title = decoded.layout.name
    if base is not None:
        title += f" at {base:#x}"
    out = _table(title)
    for col in ("field", "offset", "value"):
        _col(out, col)
    _prose(out, "meaning")
    for f in decoded.layout.fields:
        value = decoded.values.get(f.name)
        if f.reserved and not value and f.name not in decoded.missing:
            continue
        lo = f.pieces[0][0]
        offset = f"{lo // 8:#04x}" + (f".{lo % 8}" if lo % 8 else "")
        if value is None:
            text = "- (beyond limit)"
        else:
            digits = (f.width + 3) // 4
            text = str(value) if f.width == 1 else f"{value:#0{digits + 2}x}"
        out.add_row(f.name, offset, text, f.meaning, style="dim" if value is None else None)
    return out


def _entry_summary(entry: Decoded) -> str:
    v = entry.values
    flags = [
        name.upper()
        for name in ("present", "rw", "us", "accessed", "dirty", "ps", "global", "xd")
        if v.get(name)
    ]
    short = {"PRESENT": "P", "ACCESSED": "A", "DIRTY": "D", "GLOBAL": "G"}
    return " ".join(short.get(f, f) for f in flags)


def render_page_walk(walk: PageWalk) -> RenderableType:
    """Each level of a page walk, then the physical address or the fault."""
    paging = walk.paging or "none"
    out = _table(f"page walk of {walk.va:#x} ({paging} paging)")
    for col in ("level", "table", "index", "entry at", "raw", "flags", "address"):
        _col(out, col)
    for step in walk.steps:
        if step.entry is None:
            out.add_row(
                step.name, f"{step.table:#x}", f"{step.index:#x}", f"{step.entry_address:#x}"
            )
            continue
        e = step.entry
        digits = e.layout.size_bits // 4
        out.add_row(
            step.name,
            f"{step.table:#x}",
            f"{step.index:#x}",
            f"{step.entry_address:#x}",
            f"{e.raw:#0{digits + 2}x}",
            _entry_summary(e),
            f"{e.values['address']:#x}",
        )
    if walk.physical is not None:
        perms = [
            "writable" if walk.writable else "read-only",
            "user" if walk.user else "supervisor",
            "executable" if walk.executable else "no-execute",
        ]
        if walk.page_size:
            perms.insert(0, f"{walk.page_size:#x}-byte page")
        result = Text(f"-> physical {walk.physical:#x} ({', '.join(perms)})")
    else:
        result = Text(f"-> fault: {walk.fault}", style="bold red")
    if not walk.steps:
        return result
    return Group(out, result)


def render_findings(findings: Sequence[Finding]) -> RenderableType:
    """Findings: severity, id, entry, message; ``no findings`` when empty."""
    if not findings:
        return Text("no findings")
    out = _table()
    for col in ("severity", "id", "entry"):
        _col(out, col)
    _prose(out, "message")
    for f in findings:
        out.add_row(
            Text(f.severity, style=_SEVERITY_STYLE.get(f.severity, "")), f.id, f.entry, f.message
        )
    return out
