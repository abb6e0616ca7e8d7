"""The machine-state snapshot: one CPU's registers, the system tables' bytes, PIC/LAPIC.

A snapshot is what every offline command works on, and what the live target's
``capture()`` returns. Its JSON form is documented in ``docs/snapshot-format.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from lhvdbg.errors import MemoryNotCaptured
from lhvdbg.x86.cpustate import Arch, CpuState, LapicState, PicState

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
