"""``LiveTarget``: the ``Target`` protocol over a running session.

``cpu()`` comes from QMP ``info registers`` (hidden segment parts included), memory from
gdb, PIC/LAPIC from QMP, symbols from the kernel ELF. ``capture()`` gathers a whole
``Snapshot`` in a handful of round trips.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from lhvdbg.state.snapshot import Snapshot
from lhvdbg.x86.cpustate import Arch, CpuState, LapicState, PicState

if TYPE_CHECKING:
    from lhvdbg.machine.session import Session


class LiveTarget:
    """A ``Target`` backed by a live :class:`~lhvdbg.machine.session.Session`."""

    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def arch(self) -> Arch:
        return self.session.arch

    @property
    def live(self) -> bool:
        return True

    def cpu(self) -> CpuState:
        """Registers from ``info registers`` (parsed by ``lhvdbg.x86.hmp``)."""
        raise NotImplementedError

    def read_memory(self, address: int, size: int) -> bytes:
        """Guest linear memory through gdb."""
        raise NotImplementedError

    def pic(self) -> PicState | None:
        """``info pic`` parsed; None if the machine has no PIC."""
        raise NotImplementedError

    def lapic(self) -> LapicState | None:
        """``info lapic`` parsed; None if the LAPIC is absent or disabled in QEMU."""
        raise NotImplementedError

    def symbols(self) -> Mapping[str, int]:
        """Symbols of the kernel ELF (empty for a stripped kernel or a CD-ROM)."""
        raise NotImplementedError

    def symbolize(self, address: int) -> str:
        """``name+0xoff`` for an address, or the hex address."""
        raise NotImplementedError

    def capture(self, *, note: str = "", stop_reason: str | None = None) -> Snapshot:
        """Registers, GDT, IDT, TSS, stack, code, RSP0/IST pages, PIC, LAPIC, symbols,
        provenance — in a handful of round trips."""
        raise NotImplementedError
