"""gdb/MI output records and a small, fast parser for them (pure, no I/O).

The grammar is gdb's (GDB manual, "GDB/MI Output Syntax"): a line is a result record
``[token]^class[,results]``, an exec/notify async record ``[token]*class,...`` /
``[token]=class,...``, a stream record ``~"..."`` (console), ``@"..."`` (target),
``&"..."`` (log), or the ``(gdb)`` prompt. Values are C strings (octal and ``\\e``
escapes), tuples ``{...}`` and lists ``[...]``.

The parsed shape is pygdbmi's (``gdbmiparser.parse_response``), so recorded
expectations hold either way: a tuple is a dict (a key seen twice gathers its values
in a list), a list drops the names of its results (``body=[bkpt={...}]`` is a list of
dicts), a record without results has ``payload`` None. pygdbmi's parser walks the text a
character at a time and formats debug output for every value it reads; this one
tokenises with one regular expression, which keeps a single step and a 4 KiB read
close to raw gdb/MI speed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_RECORD = re.compile(r"(\d*)([\^*=])([^,]*)(?:,(.*))?\Z", re.DOTALL)
_STREAMS = {"~": "console", "@": "target", "&": "log"}
_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|([\w-]+)=|([{}\[\],])', re.DOTALL)
_ESCAPE = re.compile(rb"\\([0-7]{1,3}|.)", re.DOTALL)
_SIMPLE = {
    b"n": b"\n",
    b"t": b"\t",
    b"r": b"\r",
    b"a": b"\a",
    b"b": b"\b",
    b"f": b"\f",
    b"e": b"\033",
    b"v": b"\v",
}


@dataclass(frozen=True)
class MiRecord:
    """One parsed MI record.

    ``type`` is ``result`` (``^``), ``notify`` (``*`` exec-async and ``=``
    notify-async), ``console``/``log``/``target`` (streams), ``output`` (anything else).
    """

    type: str
    message: str | None
    payload: Any
    token: int | None

    @classmethod
    def from_pygdbmi(cls, raw: dict[str, Any]) -> MiRecord:
        """Wrap one dict of pygdbmi's shape (``type``, ``message``, ``payload``, ``token``)."""
        return cls(
            type=str(raw.get("type")),
            message=raw.get("message"),
            payload=raw.get("payload"),
            token=raw.get("token"),
        )

    @property
    def is_result(self) -> bool:
        """A ``^`` result record."""
        return self.type == "result"

    @property
    def is_stopped(self) -> bool:
        """A ``*stopped`` exec-async record."""
        return self.type == "notify" and self.message == "stopped"


def is_prompt(line: str) -> bool:
    """The ``(gdb)`` prompt that ends a reply."""
    return line.rstrip() == "(gdb)"


def unescape(text: str) -> str:
    """The text of an MI C string's contents (without the quotes)."""
    if "\\" not in text:
        return text

    def one(m: re.Match[bytes]) -> bytes:
        code = m.group(1)
        if code[:1].isdigit() and code[:1] not in (b"8", b"9"):
            return bytes([int(code, 8) & 0xFF])
        return _SIMPLE.get(code, code)

    return _ESCAPE.sub(one, text.encode()).decode("utf-8", "replace")


def parse_line(line: str) -> MiRecord | None:
    """One MI output line as a record; None for the prompt and blank lines."""
    line = line.rstrip("\r\n")
    if not line.strip() or is_prompt(line):
        return None
    kind = _STREAMS.get(line[0])
    if kind is not None and line[1:2] == '"' and line.endswith('"') and len(line) >= 3:
        return MiRecord(kind, None, unescape(line[2:-1]), None)
    m = _RECORD.match(line)
    if m is None or (m.group(2) == "^" and not m.group(3)):
        return MiRecord("output", None, line, None)
    token = int(m.group(1)) if m.group(1) else None
    rtype = "result" if m.group(2) == "^" else "notify"
    body = m.group(4)
    payload = None if body is None else parse_results(body)
    return MiRecord(rtype, m.group(3).strip(), payload, token)


def parse_lines(text: str) -> list[MiRecord]:
    """Every record of several lines of MI output (prompts dropped)."""
    out = []
    for line in text.splitlines():
        rec = parse_line(line)
        if rec is not None:
            out.append(rec)
    return out


def parse_results(text: str) -> dict[str, Any]:
    """``a="1",b={c="2"},d=["x"]`` as a dict (see the module docstring for the shape)."""
    root: dict[str, Any] = {}
    stack: list[dict[str, Any] | list[Any]] = [root]
    keys: list[str | None] = [None]  # the key waiting for a value, per open container
    for m in _TOKEN.finditer(text):
        string, key, punct = m.groups()
        top = stack[-1]
        if key is not None:
            keys[-1] = key
            continue
        if punct in ("{", "["):
            value: Any = {} if punct == "{" else []
            _store(top, keys, value)
            stack.append(value)
            keys.append(None)
        elif punct in ("}", "]"):
            if len(stack) > 1:
                stack.pop()
                keys.pop()
        elif string is not None:
            _store(top, keys, unescape(string))
    return root


def _store(top: dict[str, Any] | list[Any], keys: list[str | None], value: Any) -> None:
    if isinstance(top, list):
        top.append(value)
        keys[-1] = None
        return
    key = keys[-1]
    if key is None:
        return  # a value without a name inside a tuple: malformed, ignored
    keys[-1] = None
    if key in top:
        old = top[key]
        if isinstance(old, list) and getattr(old, "_gathered", False):
            old.append(value)
        else:
            top[key] = _Gathered([old, value])
    else:
        top[key] = value


class _Gathered(list[Any]):
    """The values of a key seen more than once in one tuple (pygdbmi's list)."""

    _gathered = True
