"""The one symbolizer: an address as ``name`` or ``name+0xoff``, by the same rule everywhere.

The rule, gdb's for minimal symbols: the nearest symbol at or below the address (at one
address, the name that sorts last), if the address is at most :data:`REACH` bytes past
it; else no name (callers print the hex address). Only the names and addresses count —
not ELF sizes or segments, which a snapshot does not carry — so the live session, the
interrupt log, ``x`` and the diagnosis name an address alike.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from functools import lru_cache

__all__ = ["REACH", "symbolize"]

REACH = 0x10000
"""How far past the nearest symbol an address is still named after it."""


@lru_cache(maxsize=8)
def _ordered(items: frozenset[tuple[str, int]]) -> tuple[tuple[int, str], ...]:
    return tuple(sorted((address, name) for name, address in items))


def symbolize(address: int, symbols: Mapping[str, int]) -> str | None:
    """``name`` or ``name+0xoff`` for ``address`` (see the module's rule), or None."""
    if not symbols:
        return None
    ordered = _ordered(frozenset(symbols.items()))
    i = bisect.bisect_right(ordered, (address, "\U0010ffff")) - 1
    if i < 0:
        return None
    start, name = ordered[i]
    offset = address - start
    if offset > REACH:
        return None
    return name if offset == 0 else f"{name}+{offset:#x}"
