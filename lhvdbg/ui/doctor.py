"""Rendering of ``lhvdbg doctor``: one row per check, install hints for what is missing.

Takes the command's JSON form (``{"core_ok": bool, "checks": [...]}``) so the text and
``--json`` say the same. The status word carries the meaning with colour off.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.text import Text

from lhvdbg.ui.tables import FitTable, bullet

__all__ = ["render_doctor"]

_STYLE = {"ok": "green", "missing": "bold red", "limited": "yellow"}


def render_doctor(data: Mapping[str, Any]) -> RenderableType:
    """The checks as a table (status, check, what was found), then what to install."""
    checks: list[Mapping[str, Any]] = list(data["checks"])
    table = FitTable(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("status", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("found", ratio=1, overflow="fold")
    for check in checks:
        status = str(check["status"])
        notes = [bullet(str(note)) for note in check.get("notes", [])]
        found: RenderableType = Text(str(check["found"]))
        if notes:  # wrapped notes stay under their text, not under the dash
            found = Group(found, *notes)
        table.add_row(Text(status, style=_STYLE.get(status, "")), str(check["name"]), found)
    head = Text("lhvdbg doctor: ", style="bold")
    if data["core_ok"]:
        head.append("ready (a QEMU and gdb run)", style="green")
    else:
        head.append("not ready: lhvdbg needs a QEMU and gdb", style="bold red")
    parts: list[RenderableType] = [head, table]
    missing = [c for c in checks if c["status"] == "missing" and c.get("package")]
    if missing:
        parts.append(Text(""))
        parts.append(Text("to install (Debian):", style="bold"))
        for check in missing:
            core = " (core)" if check.get("core") else ""
            parts.append(Text(f"  {check['name']}{core}: {check['package']}"))
    return Group(*parts)
