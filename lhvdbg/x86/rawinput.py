"""Turn the raw values people paste (gdb ``x/2wx`` words, 64-bit values, hex bytes) into bytes.

Conventions (all values are hexadecimal, ``0x`` optional, ``_`` ignored):

* a structure of N bytes (8 or 16) may be given as N/8 64-bit values, N/4 32-bit words
  (low first, as ``x/2wx`` prints them), or N bytes; ``@FILE`` reads the file;
* a single token of exactly 2N hex digits *without* ``0x`` is a byte blob in memory order
  (``6700500910890000``); with ``0x`` it is a number.

Errors are :class:`~lhvdbg.errors.DecodeError` with one line naming the bad token.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from lhvdbg.errors import DecodeError
from lhvdbg.files import RAW_BYTES, read_bytes

_HEX = re.compile(r"^(0x)?[0-9a-f]+$", re.IGNORECASE)
_SEPARATORS = re.compile(r"[\s,:]+")


def parse_hex(token: str) -> int:
    """A hexadecimal number (``0x`` optional, ``_`` allowed)."""
    clean = token.strip().replace("_", "")
    if clean.startswith("-") and _HEX.match(clean[1:]):
        raise DecodeError(f"VALUE {token}: negative; give the raw bits in hexadecimal")
    if not _HEX.match(clean):
        raise DecodeError(f"not a hexadecimal value: {token!r}")
    return int(clean, 16)


def _tokens(values: Sequence[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        out += [t for t in _SEPARATORS.split(value.strip()) if t]
    if not out:
        raise DecodeError("no value given")
    return out


def read_value_file(spec: str) -> bytes:
    """The bytes of ``@FILE``: a hex dump if the file is hex text, raw bytes otherwise."""
    data = read_bytes(Path(spec[1:]), RAW_BYTES)
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return data
    tokens = [t for t in _SEPARATORS.split(text.strip()) if t]
    if tokens and all(_HEX.match(t.replace("_", "")) for t in tokens):
        return hex_blob(tokens)
    return data


def hex_blob(values: Sequence[str]) -> bytes:
    """Bytes from hex text in memory order: ``"67 00 50 09"`` or ``"67005009"``."""
    out = bytearray()
    for token in _tokens(values):
        clean = token.replace("_", "")
        if clean.lower().startswith("0x"):
            clean = clean[2:]
        if not clean or len(clean) % 2 or not _HEX.match(clean):
            raise DecodeError(f"not a hex byte string: {token!r}")
        out += bytes.fromhex(clean)
    return bytes(out)


def blob_or_file(values: Sequence[str]) -> bytes:
    """A hex blob, or ``@FILE`` (one value)."""
    if len(values) == 1 and values[0].startswith("@"):
        return read_value_file(values[0])
    return hex_blob(values)


def structure_bytes(values: Sequence[str], sizes: Sequence[int], what: str = "value") -> bytes:
    """Bytes of a structure whose size is one of ``sizes`` (8 and/or 16), from any form.

    Two values are two 32-bit words unless one exceeds 32 bits (then two 64-bit values).
    """
    if len(values) == 1 and values[0].startswith("@"):
        data = read_value_file(values[0])
        if len(data) not in sizes:
            raise DecodeError(
                f"{what}: {values[0]} holds {len(data)} bytes, expected {_sizes(sizes)}"
            )
        return data
    tokens = _tokens(values)
    if len(tokens) == 1:
        token = tokens[0].replace("_", "")
        if not token.lower().startswith("0x") and len(token) in [2 * s for s in sizes]:
            return hex_blob(tokens)
    numbers = [parse_hex(t) for t in tokens]
    count = len(numbers)
    if count in sizes and count >= 8:
        width = 1
    elif count == 2:
        width = 8 if any(n >> 32 for n in numbers) else 4
    elif count == 4:
        width = 4
    elif count == 1:
        width = 8
    else:
        raise DecodeError(
            f"{what}: {count} values; give {_sizes(sizes)} as 64-bit values, 32-bit words or bytes"
        )
    if count * width not in sizes:
        raise DecodeError(
            f"{what}: {count} values of {width * 8} bits make {count * width} bytes, "
            f"expected {_sizes(sizes)}"
        )
    out = bytearray()
    for token, number in zip(tokens, numbers, strict=True):
        if number >> (8 * width):
            raise DecodeError(f"{token} does not fit in {width * 8} bits")
        out += number.to_bytes(width, "little")
    return bytes(out)


def _sizes(sizes: Sequence[int]) -> str:
    return " or ".join(f"{s} bytes" for s in sizes)
