"""``x/FMT ADDR``: gdb-style memory examination, format parsing and plain-text rendering.

FMT is ``[count][format][size]`` as in gdb: formats ``x`` hex, ``d`` signed, ``u``
unsigned, ``o`` octal, ``t`` binary, ``c`` char, ``a`` address (with symbol), ``s`` string;
sizes ``b`` (1), ``h`` (2), ``w`` (4), ``g`` (8); ``i`` instructions (decoded in the CPU's
mode by :mod:`lhvdbg.x86.disasm`). ADDR is an expression: a number, a symbol,
``$register``, sums and differences, parentheses, and ``*EXPR`` for the pointer stored at
EXPR (``$rsp+0x10``, ``kernel_main+4``, ``*($rsp+8)``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from lhvdbg.errors import UsageError

SIZES = {"b": 1, "h": 2, "w": 4, "g": 8}
FORMATS = "xduotcasi"
_FMT = re.compile(r"^/?(\d*)([a-z]*)$")


@dataclass(frozen=True)
class Format:
    """A parsed ``/FMT``: how many units, how to show them, and their size in bytes."""

    count: int = 1
    letter: str = "x"
    size: int = 4

    def text(self) -> str:
        """The canonical spelling, e.g. ``/4xw``."""
        unit = {v: k for k, v in SIZES.items()}[self.size]
        return f"/{self.count}{self.letter}{unit}"


def parse_format(text: str | None, last: Format | None = None, *, pointer_size: int = 8) -> Format:
    """Parse ``/FMT``; missing parts come from ``last`` (gdb remembers them) or defaults.

    ``a`` without a size letter uses ``pointer_size``; ``c`` and ``s`` use bytes.
    """
    base = last or Format()
    if not text:
        return Format(1, base.letter, base.size)
    match = _FMT.match(text)
    if match is None:
        raise UsageError(f"bad format {text!r}: expected /[count][format][size], e.g. /8xb")
    count = int(match.group(1)) if match.group(1) else 1
    letter, size = base.letter, base.size
    for ch in match.group(2):
        if ch in SIZES:
            size = SIZES[ch]
        elif ch in FORMATS:
            letter = ch
        else:
            raise UsageError(f"bad format {text!r}: unknown letter {ch!r}")
    explicit_size = any(c in SIZES for c in match.group(2))
    if letter == "a" and not explicit_size:
        size = pointer_size
    if letter in "cs" and not explicit_size:
        size = 1
    if count < 1 or count > 4096:
        raise UsageError(f"bad format {text!r}: count must be 1..4096")
    return Format(count, letter, size)


_TOKEN = re.compile(r"\s*(0[xX][0-9a-fA-F]+|\d+|\$?[A-Za-z_.][A-Za-z0-9_.]*|[-+*&()])")
_ALIASES = {"pc": ("rip", "eip", "ip"), "sp": ("rsp", "esp"), "fp": ("rbp", "ebp")}


def eval_address(
    expr: str,
    symbols: Mapping[str, int],
    registers: Callable[[], Mapping[str, int]],
    deref: Callable[[int], int] | None = None,
) -> int:
    """Evaluate ``expr``: numbers, symbols, ``$reg``, ``+``/``-``, parentheses, and
    ``*EXPR`` (the pointer stored at EXPR, read through ``deref``; as in gdb ``*$rsp+8`` is
    ``(*$rsp)+8``). UsageError for anything unknown.

    ``registers`` is called only when the expression names one.
    """
    text = expr.strip()
    if not text:
        raise UsageError("missing address")
    tokens: list[str] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            if text[position:].strip() == "":
                break
            raise UsageError(f"cannot evaluate {expr!r} (at {text[position:]!r})")
        tokens.append(match.group(1))
        position = match.end()
    regs: dict[str, Mapping[str, int]] = {}

    def value_of(term: str) -> int:
        if term[0].isdigit():
            return int(term, 0)
        if term.startswith("$"):
            table = regs.setdefault("r", registers())
            name = term[1:].lower()
            found = next((table[n] for n in (name, *_ALIASES.get(name, ())) if n in table), None)
            if found is None:
                raise UsageError(f"unknown register {term}")
            return found
        if term in symbols:
            return symbols[term]
        hint = " (the kernel has no symbols)" if not symbols else ""
        raise UsageError(f"unknown symbol: {term}{hint}")

    def unary(i: int) -> tuple[int, int]:
        if i >= len(tokens):
            raise UsageError(f"cannot evaluate {expr!r}: it ends too soon")
        token = tokens[i]
        if token == "*":
            if deref is None:
                raise UsageError(f"cannot dereference in {expr!r} here")
            value, i = unary(i + 1)
            return deref(value), i
        if token == "-":
            value, i = unary(i + 1)
            return -value, i
        if token in ("+", "&"):  # &symbol: its address, which a symbol already is
            return unary(i + 1)
        if token == "(":
            value, i = sum_of(i + 1)
            if i >= len(tokens) or tokens[i] != ")":
                raise UsageError(f"cannot evaluate {expr!r}: missing )")
            return value, i + 1
        if token == ")":
            raise UsageError(f"cannot evaluate {expr!r}: unexpected )")
        return value_of(token), i + 1

    def sum_of(i: int) -> tuple[int, int]:
        total, i = unary(i)
        while i < len(tokens) and tokens[i] in "+-":
            sign = tokens[i]
            value, i = unary(i + 1)
            total = total + value if sign == "+" else total - value
        return total, i

    total, end = sum_of(0)
    if end != len(tokens):
        raise UsageError(f"cannot evaluate address {expr!r}")
    if total < 0:
        raise UsageError(f"address {expr!r} is negative")
    return total


def units(data: bytes, fmt: Format) -> list[int]:
    """``data`` split into little-endian units of ``fmt.size`` bytes."""
    return [int.from_bytes(data[i : i + fmt.size], "little") for i in range(0, len(data), fmt.size)]


def _show(value: int, fmt: Format, symbolize: Callable[[int], str] | None) -> str:
    bits = fmt.size * 8
    if fmt.letter == "x":
        return f"0x{value:0{fmt.size * 2}x}"
    if fmt.letter == "d":
        return str(value - (1 << bits) if value >> (bits - 1) else value)
    if fmt.letter == "u":
        return str(value)
    if fmt.letter == "o":
        return f"0{value:o}"
    if fmt.letter == "t":
        return f"{value:0{bits}b}"
    if fmt.letter == "c":
        ch = chr(value & 0xFF)
        return f"{value & 0xFF} {ch!r}" if ch.isprintable() else f"{value & 0xFF} '\\x{value:02x}'"
    if fmt.letter == "a":
        name = symbolize(value) if symbolize is not None else ""
        return f"{value:#x}" + (f" <{name}>" if name and not name.startswith("0x") else "")
    raise UsageError(f"format {fmt.letter!r} cannot show values")


def per_line(fmt: Format) -> int:
    """How many units gdb puts on a line for this size."""
    if fmt.letter == "a":
        return 2
    return {1: 8, 2: 8, 4: 4, 8: 2}[fmt.size]


def render_memory(
    address: int,
    data: bytes,
    fmt: Format,
    *,
    label: Callable[[int], str] | None = None,
    symbolize: Callable[[int], str] | None = None,
) -> str:
    """Lines like gdb's: ``0x100120 <kernel_main>:\\t0x55    0x48 ...``.

    ``label(address)`` gives ``name+off`` for the line start (empty for none).
    """
    if fmt.letter == "s":
        end = data.find(b"\0")
        text = data[: end if end >= 0 else len(data)].decode("latin-1")
        return f"{_where(address, label)}\t{text!r}\n"
    values = units(data, fmt)
    step = per_line(fmt)
    lines = []
    for i in range(0, len(values), step):
        start = address + i * fmt.size
        shown = "\t".join(_show(v, fmt, symbolize) for v in values[i : i + step])
        lines.append(f"{_where(start, label)}\t{shown}")
    return "\n".join(lines) + "\n"


def _where(address: int, label: Callable[[int], str] | None) -> str:
    name = label(address) if label is not None else ""
    return f"{address:#x} <{name}>:" if name and not name.startswith("0x") else f"{address:#x}:"
