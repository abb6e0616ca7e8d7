"""The small interfaces the session's helpers need of it, as ``typing.Protocol``s.

:class:`~lhvdbg.machine.live.LiveTarget` reads through a :class:`ReadPort`;
:class:`~lhvdbg.machine.vector.VectorRun` drives a :class:`RunPort`. Both are satisfied by
:class:`~lhvdbg.machine.session.Session` without naming it, so neither module imports the
session (no import cycle, not even for type checking), and each can be driven by a
stand-in in tests.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from lhvdbg.machine.gdbmi import GdbMi
    from lhvdbg.machine.launch import LaunchConfig
    from lhvdbg.machine.monitor import HmpClient
    from lhvdbg.machine.stops import StopEvent
    from lhvdbg.state.elf import KernelInfo
    from lhvdbg.state.target import Target
    from lhvdbg.x86.cpustate import Arch


class ReadPort(Protocol):
    """What a live target reads through: guarded reads, the session's facts, the
    machine version its caches are keyed by (guarded), and the gdb and HMP clients for
    requests pipelined together (after that guarded call)."""

    @property
    def arch(self) -> Arch: ...

    @property
    def accel(self) -> str: ...

    @property
    def qemu_version(self) -> str: ...

    @property
    def kernel(self) -> Path | None: ...

    @property
    def kernel_info(self) -> KernelInfo | None: ...

    @property
    def config(self) -> LaunchConfig: ...

    @property
    def notes(self) -> list[str]: ...

    @property
    def last_stop(self) -> StopEvent | None: ...

    @property
    def monitor(self) -> HmpClient: ...

    @property
    def gdb(self) -> GdbMi: ...

    def machine_version(self) -> object: ...

    def hmp(self, command: str) -> str: ...

    def read_memory(self, address: int, size: int) -> bytes: ...

    def symbolize(self, address: int) -> str: ...


class RunPort(Protocol):
    """What a run to a vector drives: breakpoints, continue, step and reads."""

    @property
    def accel(self) -> str: ...

    @property
    def alive(self) -> bool: ...

    @property
    def kernel_info(self) -> KernelInfo | None: ...

    @property
    def notes(self) -> list[str]: ...

    @property
    def target(self) -> Target: ...

    def break_at(
        self,
        location: str | int,
        *,
        hardware: bool | None = None,
        temporary: bool = False,
        internal: bool = False,
    ) -> int: ...

    def watch(
        self, address: int, size: int, *, access: str = "write", internal: bool = False
    ) -> int: ...

    def delete(self, number: int | None = None) -> None: ...

    def breakpoint_numbers(self) -> set[int]: ...

    def cont(self, *, timeout: float, poll: Callable[[], None] | None = None) -> StopEvent: ...

    def stepi(self, count: int = 1) -> StopEvent: ...

    def pc(self) -> int: ...

    def read_memory(self, address: int, size: int) -> bytes: ...

    def symbolize(self, address: int) -> str: ...

    def timer_vector(self) -> int | None: ...
