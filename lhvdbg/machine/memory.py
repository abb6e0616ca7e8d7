"""Guest memory reads through gdb that keep what is readable.

``-data-read-memory-bytes`` on a range that is partly unmapped does not fail as a whole:
gdb (``read_memory_robust``) bisects and returns the readable head or tail when the first
or last byte can be read, and ``^error`` only when neither can. Two things to know:

* gdb 13.1 reports one byte too many for a readable *head*: it asks the stub for the
  first unmapped byte, gets ``E14``, and still includes that (unread) byte in the block
  (``begin=0x109ff0 end=0x10a001`` for a page that ends at ``0x10a000``). Mappings change
  only at page boundaries, so a run that stops short of the requested range is cut back
  to the page boundary (and a run that starts late is cut forward to one).
* A hole in the middle of a range hides whatever lies beyond it; the uncovered rest is
  therefore read again page by page, all pages pipelined in one more round trip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lhvdbg.errors import GdbError

if TYPE_CHECKING:
    from lhvdbg.machine.gdbmi import GdbMi, PendingBatch

PAGE = 0x1000

#: A readable stretch of guest memory: (linear address, bytes).
Run = tuple[int, bytes]


def read_command(address: int | str, size: int) -> str:
    """The MI command reading ``size`` bytes at ``address`` (a number, or an expression
    gdb evaluates, e.g. ``$sp-0x100``)."""
    where = address if isinstance(address, str) else f"{address:#x}"
    return f"-data-read-memory-bytes {where} {size}"


def requested_address(payload: dict[str, Any]) -> int | None:
    """The address a ``-data-read-memory-bytes`` reply was asked for (each block's
    ``begin`` less its ``offset``); None for a reply without blocks."""
    blocks = payload.get("memory") or []
    if not blocks:
        return None
    return int(blocks[0]["begin"], 16) - int(blocks[0]["offset"], 16)


def memory_runs(payload: dict[str, Any], address: int, size: int) -> list[Run]:
    """The blocks of a ``-data-read-memory-bytes`` reply as sorted, merged runs clipped
    to ``[address, address + size)``; a run that stops short of either end is cut to the
    page boundary (see the module docstring)."""
    end = address + size
    runs: list[Run] = []
    for block in payload.get("memory", []):
        begin = int(block["begin"], 16)
        data = bytes.fromhex(block.get("contents", ""))
        lo, hi = max(begin, address), min(begin + len(data), end)
        if lo > address:
            lo = -(-lo // PAGE) * PAGE
        if hi < end:
            hi = hi // PAGE * PAGE
        if lo < hi:
            runs.append((lo, data[lo - begin : hi - begin]))
    return merge_runs(runs)


def merge_runs(runs: Sequence[Run]) -> list[Run]:
    """Sort runs and join the ones that touch or overlap."""
    out: list[Run] = []
    for addr, data in sorted(runs):
        if out and addr <= out[-1][0] + len(out[-1][1]):
            prev_addr, prev = out[-1]
            out[-1] = (prev_addr, prev + data[prev_addr + len(prev) - addr :])
        else:
            out.append((addr, data))
    return out


def uncovered_ranges(runs: Sequence[Run], lo: int, hi: int) -> list[tuple[int, int]]:
    """The ``[start, end)`` ranges of ``[lo, hi)`` that no run covers (runs sorted)."""
    gaps: list[tuple[int, int]] = []
    at = lo
    for addr, data in runs:
        if addr > at:
            gaps.append((at, min(addr, hi)))
        at = max(at, addr + len(data))
    if at < hi:
        gaps.append((at, hi))
    return gaps


def page_pieces(lo: int, hi: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` cut at page boundaries, as ``(address, size)`` pieces."""
    out: list[tuple[int, int]] = []
    while lo < hi:
        end = min(hi, (lo // PAGE + 1) * PAGE)
        out.append((lo, end - lo))
        lo = end
    return out


def whole_contents(payload: dict[str, Any], address: int, size: int) -> bytes:
    """The ``size`` bytes at ``address`` from a reply; GdbError when gdb could read only
    part of them."""
    runs = memory_runs(payload, address, size)
    if len(runs) == 1 and runs[0][0] == address and len(runs[0][1]) == size:
        return runs[0][1]
    covered = sum(len(d) for _, d in runs)
    raise GdbError(
        f"gdb returned {covered} of {size} bytes at {address:#x}",
        command=read_command(address, size),
    )


def read_readable(
    gdb: GdbMi,
    regions: Sequence[tuple[int, int]],
    known: Mapping[tuple[int, int], list[Run]] | None = None,
) -> list[list[Run]]:
    """The readable runs of each ``(address, size)`` region (empty when none is).

    One pipelined round trip when every region reads whole; otherwise one more for the
    uncovered rest of the short regions, page by page. Never raises for unmapped memory.
    ``known``: first-pass runs already read for some ``(address, size)`` regions (see
    :func:`send_reads`); those are not read again, only their uncovered rest.
    """
    if not regions:
        return []
    known = known or {}
    runs: list[list[Run]] = [list(known.get(r, ())) for r in regions]
    todo = [i for i, r in enumerate(regions) if r not in known]
    if todo:
        results = gdb.batch([read_command(*regions[i]) for i in todo], check=False)
        for i, res in zip(todo, results, strict=True):
            addr, size = regions[i]
            runs[i] = [] if res.message == "error" else memory_runs(res.payload, addr, size)
    pages: list[tuple[int, int, int]] = []  # (region index, address, size)
    for i, ((addr, size), got) in enumerate(zip(regions, runs, strict=True)):
        for lo, hi in uncovered_ranges(got, addr, addr + size):
            pages += [(i, a, n) for a, n in page_pieces(lo, hi)]
    if pages:
        again = gdb.batch([read_command(a, n) for _, a, n in pages], check=False)
        for (i, a, n), res in zip(pages, again, strict=True):
            if res.message != "error":
                runs[i] += memory_runs(res.payload, a, n)
    return [merge_runs(r) for r in runs]


def send_reads(gdb: GdbMi, regions: Sequence[tuple[int | str, int]]) -> PendingBatch:
    """Write the reads of ``(address or expression, size)`` regions now (no waiting)."""
    return gdb.send([read_command(a, n) for a, n in regions])


def finish_reads(
    gdb: GdbMi, pending: PendingBatch, regions: Sequence[tuple[int | str, int]]
) -> dict[tuple[int, int], list[Run]]:
    """First-pass runs of :func:`send_reads` by the ``(address, size)`` each was read at
    (an expression's address from its reply; a failed expression is left out), for
    :func:`read_readable`'s ``known``."""
    out: dict[tuple[int, int], list[Run]] = {}
    for (where, size), res in zip(regions, gdb.finish(pending, check=False), strict=True):
        address = requested_address(res.payload) if isinstance(where, str) else where
        if address is not None:
            failed = res.message == "error"
            out[(address, size)] = [] if failed else memory_runs(res.payload, address, size)
    return out


def read_exact(
    gdb: GdbMi, regions: Sequence[tuple[int, int]], *, check: bool
) -> list[bytes | None]:
    """Each ``(address, size)`` region whole, in one pipelined round trip: GdbError for
    a failed or short read with ``check``, else None in its place."""
    if not regions:
        return []
    results = gdb.batch([read_command(a, n) for a, n in regions], check=check)
    out: list[bytes | None] = []
    for (addr, size), res in zip(regions, results, strict=True):
        if res.message == "error":
            out.append(None)
        elif check:
            out.append(whole_contents(res.payload, addr, size))
        else:
            runs = memory_runs(res.payload, addr, size)
            out.append(runs[0][1] if len(runs) == 1 and len(runs[0][1]) == size else None)
    return out


def read_c_string(gdb: GdbMi, address: int, max_length: int) -> str:
    """The NUL-terminated string at ``address`` (latin-1, at most ``max_length``), read
    in chunks that never cross a page."""
    out = bytearray()
    addr = address
    while len(out) < max_length:
        size = min(64, max_length - len(out), PAGE - (addr & (PAGE - 1)))
        chunk = read_exact(gdb, [(addr, size)], check=True)[0] or b""
        end = chunk.find(b"\0")
        if end >= 0:
            out += chunk[:end]
            break
        out += chunk
        addr += size
    return out.decode("latin-1")
