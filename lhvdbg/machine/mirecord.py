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
finds strings with ``str.find`` and reads the few other tokens one by one, which keeps a
single step and a 4 KiB read close to raw gdb/MI speed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_RECORD = re.compile(r"(\d*)([\^*=])([^,]*)(?:,(.*))?\Z", re.DOTALL)
_STREAMS = {"~": "console", "@": "target", "&": "log"}
_KEY = re.compile(r"([\w-]+)=")
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


#: The record every resume brings (a constant: a single step parses it each time).
_RUNNING_ALL = '*running,thread-id="all"'


def parse_line(line: str) -> MiRecord | None:
    """One MI output line as a record; None for the prompt and blank lines."""
    line = line.rstrip("\r\n")
    if line == _RUNNING_ALL:
        return MiRecord("notify", "running", {"thread-id": "all"}, None)
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
    """``a="1",b={c="2"},d=["x"]`` as a dict (see the module docstring for the shape).

    C strings are found with ``str.find`` (a 4 KiB memory read is one 8 KiB string), the
    rest one token at a time; malformed text gives what could be read, never an error."""
    root: dict[str, Any] = {}
    stack: list[dict[str, Any] | list[Any]] = [root]
    keys: list[str | None] = [None]  # the key waiting for a value, per open container
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            end = _closing_quote(text, i + 1)
            _store(stack[-1], keys, unescape(text[i + 1 : end]))
            i = end + 1
        elif c == "{" or c == "[":
            value: Any = {} if c == "{" else []
            _store(stack[-1], keys, value)
            stack.append(value)
            keys.append(None)
            i += 1
        elif c == "}" or c == "]":
            if len(stack) > 1:
                stack.pop()
                keys.pop()
            i += 1
        else:
            m = _KEY.match(text, i)
            if m is None:
                i += 1  # a comma, or a stray character
            else:
                keys[-1] = m.group(1)
                i = m.end()
    return root


def _closing_quote(text: str, start: int) -> int:
    """The index of the quote that ends the C string starting at ``start`` (the length
    of ``text`` when it is not closed)."""
    at = start
    while True:
        end = text.find('"', at)
        if end < 0:
            return len(text)
        slashes = 0
        while end - slashes - 1 >= start and text[end - slashes - 1] == "\\":
            slashes += 1
        if slashes % 2 == 0:
            return end
        at = end + 1


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
