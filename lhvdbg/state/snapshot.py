"""The machine-state snapshot: one CPU's registers, the system tables' bytes, PIC/LAPIC.

A snapshot is what every offline command works on, and what the live target's
``capture()`` returns. Its JSON form is documented in ``docs/snapshot-format.md``:
:func:`snapshot_to_dict`/:func:`snapshot_from_dict` convert, :func:`save_snapshot`/
:func:`load_snapshot` (and :func:`dumps_snapshot`/:func:`loads_snapshot`) do the file I/O.
Loading validates every field, its type and its range on the snapshot's architecture
(register widths, 16-bit selectors and table limits, 8-bit PIC registers, memory regions
inside the address space), and raises a one-line :class:`SnapshotError` naming the file
and the field path (``snap.json: cpu.gdtr.limit: 0x10000 does not fit in 16 bits (a
descriptor-table limit)``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast, get_args

from lhvdbg.errors import MemoryNotCaptured, SnapshotError
from lhvdbg.files import SNAPSHOT, read_bytes
from lhvdbg.x86.cpustate import (
    SEGMENT_NAMES,
    Arch,
    CpuMode,
    CpuState,
    LapicState,
    PicChip,
    PicState,
    SegmentRegister,
    TableRegister,
)

FORMAT_VERSION = 1


@dataclass(frozen=True)
class MemoryRegion:
    """Bytes read from guest memory at a linear ``address``; ``label`` says why.

    Labels used by capture: ``gdt``, ``idt``, ``tss``, ``stack`` (around the stack
    pointer), ``rsp0``, ``ist1``..``ist7``, ``esp0``, ``code`` (around the instruction
    pointer), or any user label.
    """

    address: int
    data: bytes
    label: str

    @property
    def end(self) -> int:
        """One past the last address held."""
        return self.address + len(self.data)


@dataclass(frozen=True)
class Provenance:
    """Where a snapshot came from."""

    source: str  # "qemu", "reference", "fixture"
    captured_at: str  # ISO 8601, UTC
    qemu_version: str | None = None
    accel: str | None = None  # "tcg" or "kvm"
    kernel_path: str | None = None
    kernel_sha256: str | None = None
    stop_reason: str | None = None  # e.g. "breakpoint at 0x100abc", "triple fault"
    note: str = ""
    # Field paths (prefixes) this snapshot vouches for; empty means all. A reference built
    # from a kernel's source knows its tables but not its registers: diff skips the rest.
    scope: tuple[str, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """A recorded machine state."""

    arch: Arch
    cpu: CpuState
    memory: tuple[MemoryRegion, ...]
    provenance: Provenance
    pic: PicState | None = None
    lapic: LapicState | None = None
    symbols: Mapping[str, int] = field(default_factory=dict)
    hmp: Mapping[str, str] = field(default_factory=dict)  # raw HMP text by command

    def region(self, label: str) -> MemoryRegion | None:
        """The first region with this label, if captured."""
        return next((r for r in self.memory if r.label == label), None)

    def read(self, address: int, size: int) -> bytes:
        """``size`` bytes at ``address`` from one captured region, or MemoryNotCaptured."""
        for region in self.memory:
            if region.address <= address and address + size <= region.end:
                offset = address - region.address
                return region.data[offset : offset + size]
        raise MemoryNotCaptured(
            f"memory {address:#x}..{address + size:#x} is not in the snapshot", address=address
        )


# --- JSON form ---------------------------------------------------------------------------

ARCHES: tuple[str, ...] = get_args(Arch)
MODES: tuple[str, ...] = get_args(CpuMode)
_HEX_RE = re.compile(r"0x[0-9a-fA-F]+")
_DATA_RE = re.compile(r"(?:[0-9a-fA-F]{2})*")
_CPU_HEX = ("ip", "flags", "cr0", "cr2", "cr3", "cr4", "efer")
_SEGMENT_HEX = ("selector", "base", "limit", "flags")
_PIC_HEX = ("irr", "imr", "isr", "irq_base")
_LAPIC_HEX = ("svr", "lvt_timer", "timer_initial", "timer_current", "timer_divide", "isr", "irr")
_LAPIC_OPTIONAL_HEX = ("tmr", "tpr", "ppr")

# Field widths in bits (Intel SDM Vol. 3A): the address/register width of the architecture
# (§2.5, §3.4), selectors (§3.4.2), GDTR/IDTR limits (§2.4.1, §2.4.3), the descriptor
# cache's 32-bit limit and attribute word (§3.4.5), 8259A registers (one byte each), local
# APIC registers (§11.4: 32 bits; ISR/IRR/TMR 256 bits; TPR/PPR 8 bits), MSRs (64).
ADDRESS_BITS = {"amd64": 64, "i386": 32}
_SEGMENT_BITS = {"selector": 16, "limit": 32, "flags": 32}  # base: the address width
_TABLE_LIMIT_BITS = 16
_PIC_BITS = 8
_LAPIC_BITS = {"isr": 256, "irr": 256, "tmr": 256, "tpr": 8, "ppr": 8}  # others 32
_WHY = {
    8: "an 8-bit register",
    16: "a 16-bit field",
    32: "a 32-bit register",
    64: "a 64-bit register",
    256: "a 256-bit register",
}
_PROVENANCE_OPTIONAL = ("qemu_version", "accel", "kernel_path", "kernel_sha256", "stop_reason")


def _hex(value: int) -> str:
    return f"{value:#x}"


def _hex_map(values: Mapping[str, int]) -> dict[str, str]:
    return {key: _hex(value) for key, value in values.items()}


def _segment_to_dict(seg: SegmentRegister) -> dict[str, str]:
    return {name: _hex(getattr(seg, name)) for name in _SEGMENT_HEX}


def _pic_chip_to_dict(chip: PicChip) -> dict[str, Any]:
    out: dict[str, Any] = {name: _hex(getattr(chip, name)) for name in _PIC_HEX}
    out["hprio"] = chip.hprio
    out["init_state"] = chip.init_state
    out["extra"] = _hex_map(chip.extra)
    return out


def cpu_to_dict(cpu: CpuState) -> dict[str, Any]:
    """The JSON form of a CPU state (the snapshot's ``cpu`` object)."""
    return {
        "mode": cpu.mode,
        "ip": _hex(cpu.ip),
        "flags": _hex(cpu.flags),
        "cpl": cpu.cpl,
        "halted": cpu.halted,
        "gprs": _hex_map(cpu.gprs),
        "segments": {name: _segment_to_dict(seg) for name, seg in cpu.segments.items()},
        "gdtr": {"base": _hex(cpu.gdtr.base), "limit": _hex(cpu.gdtr.limit)},
        "idtr": {"base": _hex(cpu.idtr.base), "limit": _hex(cpu.idtr.limit)},
        **{name: _hex(getattr(cpu, name)) for name in ("cr0", "cr2", "cr3", "cr4", "efer")},
    }


def pic_to_dict(pic: PicState | None) -> dict[str, Any] | None:
    """The JSON form of the PIC state (the snapshot's ``pic`` object), None if absent."""
    if pic is None:
        return None
    return {"master": _pic_chip_to_dict(pic.master), "slave": _pic_chip_to_dict(pic.slave)}


def lapic_to_dict(lapic: LapicState | None) -> dict[str, Any] | None:
    """The JSON form of the LAPIC state (the snapshot's ``lapic`` object), None if absent."""
    if lapic is None:
        return None
    return {
        "apic_id": lapic.apic_id,
        **{name: _hex(getattr(lapic, name)) for name in _LAPIC_HEX + _LAPIC_OPTIONAL_HEX},
        "lvt": _hex_map(lapic.lvt),
        "extra": _hex_map(lapic.extra),
    }


def snapshot_to_dict(s: Snapshot) -> dict[str, Any]:
    """The JSON-ready form of a snapshot (format_version 1)."""
    return {
        "format_version": FORMAT_VERSION,
        "arch": s.arch,
        "provenance": {
            "source": s.provenance.source,
            "captured_at": s.provenance.captured_at,
            **{name: getattr(s.provenance, name) for name in _PROVENANCE_OPTIONAL},
            "note": s.provenance.note,
            "scope": list(s.provenance.scope),
        },
        "cpu": cpu_to_dict(s.cpu),
        "memory": [
            {"label": r.label, "address": _hex(r.address), "data": r.data.hex()} for r in s.memory
        ],
        "pic": pic_to_dict(s.pic),
        "lapic": lapic_to_dict(s.lapic),
        "symbols": _hex_map(s.symbols),
        "hmp": dict(s.hmp),
    }


class _Reader:
    """Typed access to a decoded JSON tree, raising SnapshotError with the field path."""

    def __init__(self, origin: str, address_bits: int = 64) -> None:
        self.origin = origin
        self.address_bits = address_bits  # set from ``arch`` before the rest is read

    def fail(self, path: str, problem: str) -> SnapshotError:
        where = f"{self.origin}: {path}" if path else self.origin
        return SnapshotError(f"{where}: {problem}", origin=self.origin, field=path)

    def obj(self, parent: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
        value = self.get(parent, key, path)
        if not isinstance(value, dict):
            raise self.fail(path, "not an object")
        return value

    def opt_obj(self, parent: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any] | None:
        if parent.get(key) is None:
            return None
        return self.obj(parent, key, path)

    def get(self, parent: Mapping[str, Any], key: str, path: str) -> Any:
        if key not in parent:
            raise self.fail(path, "missing")
        return parent[key]

    def hexint(
        self, parent: Mapping[str, Any], key: str, path: str, bits: int | None = None
    ) -> int:
        return self.hex_value(self.get(parent, key, path), path, bits)

    def hex_value(self, value: Any, path: str, bits: int | None = None) -> int:
        """A ``0x...`` string of at most ``bits`` bits (default: the address width)."""
        if not isinstance(value, str) or not _HEX_RE.fullmatch(value):
            raise self.fail(path, f"not a hex string: {json.dumps(value)[:40]}")
        number = int(value, 16)
        self.fits(number, path, self.address_bits if bits is None else bits)
        return number

    def fits(self, number: int, path: str, bits: int) -> None:
        """SnapshotError unless ``0 <= number < 2**bits``."""
        if 0 <= number < 1 << bits:
            return
        shown = (
            f"{number:#x}" if number.bit_length() <= 72 else f"a {number.bit_length()}-bit value"
        )
        why = (
            _WHY.get(bits, f"{bits} bits")
            if bits != self.address_bits
            else (f"the {bits}-bit address and register width of this architecture")
        )
        raise self.fail(path, f"{shown} does not fit in {bits} bits ({why})")

    def integer(
        self, parent: Mapping[str, Any], key: str, path: str, most: int | None = None
    ) -> int:
        """An integer, ``0..most`` when ``most`` is given."""
        value = self.get(parent, key, path)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(path, "not an integer")
        if most is not None and not 0 <= value <= most:
            raise self.fail(path, f"{value} is not in 0..{most}")
        return value

    def opt_integer(
        self, parent: Mapping[str, Any], key: str, path: str, most: int | None = None
    ) -> int | None:
        return None if parent.get(key) is None else self.integer(parent, key, path, most)

    def string(self, parent: Mapping[str, Any], key: str, path: str) -> str:
        value = self.get(parent, key, path)
        if not isinstance(value, str):
            raise self.fail(path, "not a string")
        return value

    def opt_string(self, parent: Mapping[str, Any], key: str, path: str) -> str | None:
        return None if parent.get(key) is None else self.string(parent, key, path)

    def choice(
        self, parent: Mapping[str, Any], key: str, path: str, allowed: tuple[str, ...]
    ) -> str:
        value = self.get(parent, key, path)
        if value not in allowed:
            raise self.fail(path, f"{json.dumps(value)[:40]} is not one of {', '.join(allowed)}")
        return cast(str, value)

    def hex_map(
        self, parent: Mapping[str, Any], key: str, path: str, bits: int | None = None
    ) -> dict[str, int]:
        if parent.get(key) is None:
            return {}
        values = self.obj(parent, key, path)
        return {name: self.hex_value(v, f"{path}.{name}", bits) for name, v in values.items()}


def _segment(r: _Reader, d: Mapping[str, Any], path: str) -> SegmentRegister:
    selector, base, limit, flags = (
        r.hexint(d, n, f"{path}.{n}", _SEGMENT_BITS.get(n)) for n in _SEGMENT_HEX
    )
    return SegmentRegister(selector=selector, base=base, limit=limit, flags=flags)


def _table(r: _Reader, d: Mapping[str, Any], path: str) -> TableRegister:
    return TableRegister(
        r.hexint(d, "base", f"{path}.base"),
        r.hexint(d, "limit", f"{path}.limit", _TABLE_LIMIT_BITS),
    )


def _gpr_bits(r: _Reader, name: str) -> int:
    """A general register's width: the architecture's, or 64 for an amd64 register name
    (``rax``, ``r8``) a 64-bit QEMU reports for a 32-bit guest."""
    return 64 if name.startswith("r") else r.address_bits


def _cpu(r: _Reader, d: Mapping[str, Any]) -> CpuState:
    segments_d = r.obj(d, "segments", "cpu.segments")
    segments = {
        name: _segment(r, r.obj(segments_d, name, f"cpu.segments.{name}"), f"cpu.segments.{name}")
        for name in SEGMENT_NAMES
    }
    halted = d.get("halted")
    if halted is not None and not isinstance(halted, bool):
        raise r.fail("cpu.halted", "not true, false or null")
    cpl = r.integer(d, "cpl", "cpu.cpl")
    if not 0 <= cpl <= 3:
        raise r.fail("cpu.cpl", f"{cpl} is not 0..3")
    gprs_d = r.obj(d, "gprs", "cpu.gprs")  # required, even if empty
    gprs = {
        name: r.hex_value(value, f"cpu.gprs.{name}", _gpr_bits(r, name))
        for name, value in gprs_d.items()
    }
    regs = {
        name: r.hexint(d, name, f"cpu.{name}", 64 if name == "efer" else None) for name in _CPU_HEX
    }
    return CpuState(
        mode=cast(CpuMode, r.choice(d, "mode", "cpu.mode", MODES)),
        gprs=gprs,
        segments=segments,
        gdtr=_table(r, r.obj(d, "gdtr", "cpu.gdtr"), "cpu.gdtr"),
        idtr=_table(r, r.obj(d, "idtr", "cpu.idtr"), "cpu.idtr"),
        cpl=cpl,
        halted=halted,
        **regs,
    )


def _memory(r: _Reader, d: Mapping[str, Any]) -> tuple[MemoryRegion, ...]:
    regions = r.get(d, "memory", "memory")
    if not isinstance(regions, list):
        raise r.fail("memory", "not a list")
    out = []
    for i, item in enumerate(regions):
        path = f"memory[{i}]"
        if not isinstance(item, dict):
            raise r.fail(path, "not an object")
        data = r.string(item, "data", f"{path}.data")
        if not _DATA_RE.fullmatch(data):
            raise r.fail(f"{path}.data", "not an even number of hex digits")
        region = MemoryRegion(
            address=r.hexint(item, "address", f"{path}.address"),
            data=bytes.fromhex(data),
            label=r.string(item, "label", f"{path}.label"),
        )
        if region.end > 1 << r.address_bits:
            raise r.fail(
                path,
                f"{region.address:#x} + {len(region.data):#x} bytes runs past the end of the "
                f"{r.address_bits}-bit address space",
            )
        out.append(region)
    return tuple(out)


def _pic_chip(r: _Reader, d: Mapping[str, Any], path: str) -> PicChip:
    irr, imr, isr, irq_base = (r.hexint(d, n, f"{path}.{n}", _PIC_BITS) for n in _PIC_HEX)
    hprio = r.opt_integer(d, "hprio", f"{path}.hprio", 7)  # the rotating priority 0..7
    return PicChip(
        irr=irr,
        imr=imr,
        isr=isr,
        irq_base=irq_base,
        hprio=0 if hprio is None else hprio,
        init_state=r.opt_integer(d, "init_state", f"{path}.init_state", 3),  # ICW2..ICW4
        extra=r.hex_map(d, "extra", f"{path}.extra", _PIC_BITS),
    )


def _pic(r: _Reader, d: Mapping[str, Any]) -> PicState | None:
    pic = r.opt_obj(d, "pic", "pic")
    if pic is None:
        return None
    return PicState(
        master=_pic_chip(r, r.obj(pic, "master", "pic.master"), "pic.master"),
        slave=_pic_chip(r, r.obj(pic, "slave", "pic.slave"), "pic.slave"),
    )


def _lapic(r: _Reader, d: Mapping[str, Any]) -> LapicState | None:
    lapic = r.opt_obj(d, "lapic", "lapic")
    if lapic is None:
        return None
    required = {n: r.hexint(lapic, n, f"lapic.{n}", _LAPIC_BITS.get(n, 32)) for n in _LAPIC_HEX}
    optional = {
        n: r.hexint(lapic, n, f"lapic.{n}", _LAPIC_BITS.get(n, 32))
        for n in _LAPIC_OPTIONAL_HEX
        if n in lapic
    }
    return LapicState(
        apic_id=r.integer(lapic, "apic_id", "lapic.apic_id", 0xFFFF_FFFF),  # x2APIC: 32 bits
        lvt=r.hex_map(lapic, "lvt", "lapic.lvt", 32),
        extra=r.hex_map(lapic, "extra", "lapic.extra", 64),
        **required,
        **optional,
    )


def _provenance(r: _Reader, d: Mapping[str, Any]) -> Provenance:
    p = r.obj(d, "provenance", "provenance")
    note = r.opt_string(p, "note", "provenance.note")
    scope = p.get("scope") or []
    if not isinstance(scope, list) or not all(isinstance(x, str) for x in scope):
        raise r.fail("provenance.scope", "not a list of strings")
    return Provenance(
        source=r.string(p, "source", "provenance.source"),
        captured_at=r.string(p, "captured_at", "provenance.captured_at"),
        note=note or "",
        scope=tuple(scope),
        **{n: r.opt_string(p, n, f"provenance.{n}") for n in _PROVENANCE_OPTIONAL},
    )


def snapshot_from_dict(d: Any, origin: str) -> Snapshot:
    """Validate a decoded JSON value and build the Snapshot; ``origin`` names the file in
    errors. Unknown keys are ignored; anything missing or mistyped raises SnapshotError."""
    r = _Reader(origin)
    if not isinstance(d, dict):
        raise r.fail("", "not a JSON object")
    version = d.get("format_version")
    if version is None:
        raise r.fail("format_version", "missing")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise r.fail(
            "format_version",
            f"{json.dumps(version)[:20]} is not supported (this lhvdbg reads {FORMAT_VERSION})",
        )
    hmp = d.get("hmp") or {}
    if not isinstance(hmp, dict) or not all(isinstance(v, str) for v in hmp.values()):
        raise r.fail("hmp", "not an object of strings")
    arch = cast(Arch, r.choice(d, "arch", "arch", ARCHES))
    r.address_bits = ADDRESS_BITS[arch]
    return Snapshot(
        arch=arch,
        cpu=_cpu(r, r.obj(d, "cpu", "cpu")),
        memory=_memory(r, d),
        provenance=_provenance(r, d),
        pic=_pic(r, d),
        lapic=_lapic(r, d),
        symbols=r.hex_map(d, "symbols", "symbols"),
        hmp=dict(hmp),
    )


def dumps_snapshot(s: Snapshot) -> str:
    """The snapshot as JSON text (indented, ending in a newline)."""
    return json.dumps(snapshot_to_dict(s), indent=2) + "\n"


def loads_snapshot(text: str | bytes, origin: str) -> Snapshot:
    """Parse and validate JSON text; errors name ``origin``."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        detail = (
            f"line {exc.lineno} column {exc.colno}: {exc.msg}"
            if isinstance(exc, json.JSONDecodeError)
            else "not UTF-8"
        )
        raise SnapshotError(f"{origin}: not valid JSON ({detail})", origin=origin) from exc
    return snapshot_from_dict(data, origin)


def save_snapshot(s: Snapshot, path: str | os.PathLike[str]) -> None:
    """Write ``s`` to ``path`` as JSON (atomically: a temporary file, then rename)."""
    target = Path(path)
    text = dumps_snapshot(s)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SnapshotError(f"{target}: cannot write: {exc.strerror or exc}") from exc


def load_snapshot(path: str | os.PathLike[str]) -> Snapshot:
    """Read and validate a snapshot file."""
    return loads_snapshot(read_bytes(Path(path), SNAPSHOT), str(path))
