"""The ``Target`` protocol: one view of a machine, live or recorded.

Everything above the backends (commands, diagnosis inputs, the shell, scenarios) takes a
``Target``. ``SnapshotTarget`` serves a recorded :class:`Snapshot`; the live target in
``lhvdbg.machine`` serves a running QEMU through QMP and gdb/MI.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from lhvdbg.state.snapshot import Snapshot
from lhvdbg.x86.cpustate import Arch, CpuState, LapicState, PicState


@runtime_checkable
class Target(Protocol):
    """What every consumer of machine state may ask."""

    @property
    def arch(self) -> Arch: ...

    @property
    def live(self) -> bool: ...

    def cpu(self) -> CpuState:
        """All registers, including the hidden parts of segment registers."""
        ...

    def read_memory(self, address: int, size: int) -> bytes:
        """Guest linear memory (raises MemoryNotCaptured or a MachineError)."""
        ...

    def pic(self) -> PicState | None: ...

    def lapic(self) -> LapicState | None: ...

    def symbols(self) -> Mapping[str, int]:
        """Symbol name → address; empty for a stripped kernel."""
        ...

    def capture(self) -> Snapshot:
        """A full snapshot of the current state."""
        ...


class SnapshotTarget:
    """A read-only ``Target`` over a recorded snapshot."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    @property
    def arch(self) -> Arch:
        return self.snapshot.arch

    @property
    def live(self) -> bool:
        return False

    def cpu(self) -> CpuState:
        return self.snapshot.cpu

    def read_memory(self, address: int, size: int) -> bytes:
        return self.snapshot.read(address, size)

    def pic(self) -> PicState | None:
        return self.snapshot.pic

    def lapic(self) -> LapicState | None:
        return self.snapshot.lapic

    def symbols(self) -> Mapping[str, int]:
        return self.snapshot.symbols

    def capture(self) -> Snapshot:
        return self.snapshot
