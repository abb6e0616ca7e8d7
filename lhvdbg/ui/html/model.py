"""What the CPU checked: the delivery model's account of the chain (``Report.to_json()``'s
``model``), one table of checks per delivery, in the SDM's order, the failing one marked.

Read defensively from the JSON form (absent or partial data renders as less, never fails):
``{"first_failure": {...check, "role", "event_vector"}, "accounts": [{"vector", "source",
"log_line", "origin", "deliveries": [{"vector", "kind", "ext", "mode", "stack", "new_sp",
"checks": [{"id", "ok", "text", "sdm", "fix_fields", "raises"}]}], "agreement", "notes"}]}``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from lhvdbg.ui.html.markup import esc, html_row, html_table
from lhvdbg.x86.vectors import vector_name

__all__ = ["failing_fix_fields", "model_section"]

_AGREEMENT = {
    "confirmed": "agrees with QEMU's log",
    "quirk": "agrees with QEMU's log up to a known QEMU quirk",
    "differs": "differs from QEMU's log",
    "unknown": "not compared with a log",
}


def _maps(value: object) -> list[Mapping[str, Any]]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def _vector(value: object) -> str:
    if not isinstance(value, int):
        return "?"
    name = vector_name(value)
    return f"{value:#04x}" if name == f"vector {value:#04x}" else f"{value:#04x} {name}"


def _raises(check: Mapping[str, Any]) -> str:
    raised = check.get("raises")
    if not isinstance(raised, Mapping):
        return ""
    vector = raised.get("vector")
    text = vector_name(vector) if isinstance(vector, int) else "?"
    code = raised.get("error_code")
    if isinstance(code, int):
        text += f"({code:#x})"
    cr2 = raised.get("cr2")
    if isinstance(cr2, int):
        text += f", CR2={cr2:#x}"
    return text


def _checks(model: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for account in _maps(model.get("accounts")):
        if isinstance(account.get("origin"), Mapping):
            yield account["origin"]
        for delivery in _maps(account.get("deliveries")):
            yield from _maps(delivery.get("checks"))


def failing_fix_fields(model: object) -> list[tuple[str, str]]:
    """``(fix field, why)`` of every failing check (to highlight GDT/IDT entries)."""
    if not isinstance(model, Mapping):
        return []
    out = []
    for check in _checks(model):
        if check.get("ok") is False:
            for field in check.get("fix_fields") or []:
                out.append((str(field), f"check {check.get('id')} failed: {check.get('text')}"))
    return out


def _check_rows(checks: list[Mapping[str, Any]]) -> list[str]:
    rows = []
    for check in checks:
        ok = check.get("ok")
        mark = "✓" if ok is True else "✗" if ok is False else "?"
        css = "check ok" if ok is True else "check problem error" if ok is False else "check"
        cells = [mark, str(check.get("id", "")), str(check.get("text", ""))]
        cells += [str(check.get("sdm") or ""), _raises(check)]
        rows.append(html_row(cells, css=css, attrs=f' data-check="{esc(check.get("id", ""))}"'))
    return rows


def _delivery(delivery: Mapping[str, Any]) -> str:
    head = f"deliver {_vector(delivery.get('vector'))} ({delivery.get('kind', '?')}"
    head += ", EXT)" if delivery.get("ext") else ")"
    if delivery.get("mode"):
        head += f", {delivery['mode']} mode"
    if delivery.get("stack"):
        head += f", {delivery['stack']} stack"
    if isinstance(delivery.get("new_sp"), int):
        head += f", handler stack {delivery['new_sp']:#x}"
    columns = ("", "check", "what the state shows", "Intel SDM", "raises")
    rows = _check_rows(_maps(delivery.get("checks")))
    return f'<p class="meta">{esc(head)}</p>' + html_table(columns, rows, css="checks")


def _account(account: Mapping[str, Any]) -> str:
    head = f"{_vector(account.get('vector'))} ({account.get('source', '?')})"
    if isinstance(account.get("log_line"), int):
        head += f", -d int log line {account['log_line']}"
    agreement = _AGREEMENT.get(str(account.get("agreement")), "")
    parts = [f'<h3>{esc(head)}</h3><p class="meta">{esc(agreement)}</p>']
    origin = account.get("origin")
    if isinstance(origin, Mapping) and origin.get("ok") is False:
        parts.append(
            f'<p class="prose">raised because <code>{esc(origin.get("id", ""))}</code>: '
            f"{esc(origin.get('text', ''))}</p>"
        )
    parts += [_delivery(d) for d in _maps(account.get("deliveries"))]
    if account.get("triple_fault"):
        parts.append('<p class="prose"><span class="badge triple">triple fault</span></p>')
    notes = [str(n) for n in account.get("notes") or []]
    if notes:
        parts.append('<ul class="prose">' + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    vector = account.get("vector")
    data = f' data-vector="{vector}"' if isinstance(vector, int) else ""
    return f'<div class="account"{data}>' + "".join(parts) + "</div>"


def model_section(model: object) -> str:
    """The section, or nothing when the report carries no model."""
    if not isinstance(model, Mapping):
        return ""
    first = model.get("first_failure")
    lead = ""
    if isinstance(first, Mapping):
        raised = _raises(first)
        lead = (
            '<div class="first-failure"><b>first failing check:</b> '
            f"<code>{esc(first.get('id', ''))}</code> — {esc(first.get('text', ''))}"
            + (f" ({esc(first['sdm'])})" if first.get("sdm") else "")
            + (f" → raises {esc(raised)}" if raised else "")
            + "</div>"
        )
    accounts = "".join(_account(a) for a in _maps(model.get("accounts")))
    if not lead and not accounts:
        return ""
    title = "what the CPU checked (the delivery model, Intel SDM order)"
    return f'<h2 id="model">{esc(title)}</h2>{lead}{accounts}'
