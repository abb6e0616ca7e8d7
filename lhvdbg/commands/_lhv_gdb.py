"""lhvdbg inside any gdb attached to a QEMU gdbstub: ``source`` this file (its path is what
``lhvdbg gdb-plugin`` prints) to get ``lhv gdt``, ``lhv idt [N|all]``, ``lhv tss``,
``lhv pt VA``, ``lhv context`` and ``lhv diagnose``.

No lhvdbg session is needed: registers, GDTR/IDTR/TR with their hidden parts and the
control registers come from QEMU's ``monitor info registers`` (through gdb's ``monitor``
command), memory from gdb, symbols from the file gdb loaded. Each ``lhv`` command is the
registry's command run as the shell runs it, on a target made of those reads, so the
tables are the shell's. Works beside pwndbg or GEF (one ``lhv`` prefix command).

gdb's embedded Python must find lhvdbg and its dependencies: this file puts the folder
that holds the ``lhvdbg`` package on ``sys.path``, then ``$LHVDBG_SITE`` (a
``site-packages`` folder, ``:``-separated) and the checkout's ``.venv`` when there is one.
"""

from __future__ import annotations

import glob
import importlib
import io
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # the folder holding the lhvdbg package
SUBCOMMANDS = ("gdt", "idt", "tss", "pt", "context", "diagnose")


def _extend_path() -> None:
    """Make lhvdbg and its dependencies importable in gdb's Python."""
    wanted = [str(ROOT)]
    wanted += [p for p in os.environ.get("LHVDBG_SITE", "").split(":") if p]
    wanted += sorted(glob.glob(str(ROOT / ".venv" / "lib" / "python3*" / "site-packages")))
    for path in wanted:
        if path not in sys.path:
            sys.path.append(path)


class GdbTarget:
    """A live ``Target`` read through the gdb this runs in (one read per question)."""

    def __init__(self, gdb: Any) -> None:
        self.gdb = gdb
        self._cpu: Any = None
        self._symbols: dict[str, int] | None = None

    def monitor(self, command: str) -> str:
        """A QEMU monitor command's text (gdb ``monitor`` → the gdbstub's qRcmd)."""
        text: str = self.gdb.execute(f"monitor {command}", to_string=True)
        return text

    @property
    def arch(self) -> str:
        name = str(self.gdb.selected_inferior().architecture().name())
        return "amd64" if "64" in name else "i386"

    @property
    def live(self) -> bool:
        return True

    def cpu(self) -> Any:
        if self._cpu is None:
            from lhvdbg.x86.hmp import parse_info_registers

            self._cpu = parse_info_registers(self.monitor("info registers"))
        return self._cpu

    def read_memory(self, address: int, size: int) -> bytes:
        from lhvdbg.errors import MemoryNotCaptured

        try:
            return bytes(self.gdb.selected_inferior().read_memory(address, size))
        except self.gdb.MemoryError as exc:
            raise MemoryNotCaptured(
                f"memory {address:#x}..{address + size:#x} is not readable ({exc})",
                address=address,
            ) from None

    def pic(self) -> Any:
        from lhvdbg.x86.hmp import parse_info_pic

        try:
            return parse_info_pic(self.monitor("info pic"))
        except Exception:
            return None

    def lapic(self) -> Any:
        from lhvdbg.x86.hmp import parse_info_lapic

        try:
            return parse_info_lapic(self.monitor("info lapic"))
        except Exception:
            return None

    def symbols(self) -> Mapping[str, int]:
        if self._symbols is None:
            self._symbols = {}
            path = self.gdb.current_progspace().filename
            if path:
                from lhvdbg.state.elf import inspect_elf

                try:
                    self._symbols = dict(inspect_elf(path).symbols)
                except Exception:
                    self._symbols = {}
        return self._symbols

    def capture(self) -> Any:
        """A snapshot of the tables, stack and code (what ``lhv diagnose`` reads)."""
        from datetime import UTC, datetime

        from lhvdbg.state.snapshot import MemoryRegion, Provenance, Snapshot

        cpu = self.cpu()
        plan = [("stack", max(0, cpu.sp - 0x100), 0x300), ("code", max(0, cpu.ip - 0x20), 0x60)]
        if cpu.mode not in ("real", "vm86"):
            plan += [("gdt", cpu.gdtr.base, cpu.gdtr.limit + 1)] if cpu.gdtr.limit else []
            plan += [("idt", cpu.idtr.base, cpu.idtr.limit + 1)] if cpu.idtr.limit else []
            plan += [("tss", cpu.tr.base, min(cpu.tr.limit + 1, 0x2068))]
        regions = []
        for label, address, size in plan:
            try:
                regions.append(MemoryRegion(address, self.read_memory(address, size), label))
            except Exception:
                continue
        provenance = Provenance(
            source="qemu",
            captured_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            kernel_path=self.gdb.current_progspace().filename,
            stop_reason="gdb stop (lhv plugin)",
        )
        return Snapshot(
            arch=self.arch,  # type: ignore[arg-type]
            cpu=cpu,
            memory=tuple(regions),
            provenance=provenance,
            pic=self.pic(),
            lapic=self.lapic(),
            symbols=dict(self.symbols()),
        )


def run_lhv(gdb: Any, line: str) -> str:
    """What ``lhv LINE`` prints: the registry's command run as the shell runs it."""
    from lhvdbg.commands.registry import REGISTRY, Context
    from lhvdbg.ui.shell import Shell

    words = line.split()
    if not words or words[0] not in SUBCOMMANDS:
        return f"usage: lhv {'|'.join(SUBCOMMANDS)} [ARGS]  (e.g. lhv idt 8, lhv pt $rsp)\n"
    out = io.StringIO()
    width = _width(gdb)
    ctx = Context(stdout=out, color=False, width=width, target=GdbTarget(gdb))  # type: ignore[arg-type]
    Shell(REGISTRY, ctx, out=out, err=out).execute(line)
    return out.getvalue()


def _width(gdb: Any) -> int | None:
    """gdb's ``width`` when it has one (the terminal's), else None: ``$COLUMNS`` or 80."""
    try:
        width = gdb.parameter("width")
    except Exception:
        return None
    return width if isinstance(width, int) and 40 <= width < 1000 else None


def register() -> None:
    """Define the ``lhv`` command in the running gdb."""
    gdb = importlib.import_module("gdb")

    class Lhv(gdb.Command):  # type: ignore[misc,name-defined]
        """lhvdbg's decoded views: lhv gdt | idt [N|all] | tss | pt VA | context | diagnose"""

        def __init__(self) -> None:
            super().__init__("lhv", gdb.COMMAND_USER)

        def invoke(self, argument: str, from_tty: bool) -> None:
            gdb.write(run_lhv(gdb, argument))

        def complete(self, text: str, word: str) -> list[str]:
            return [s for s in SUBCOMMANDS if s.startswith(text.strip())]

    Lhv()


if __name__ == "__main__" and "gdb" in sys.modules:  # `source` in gdb
    _extend_path()
    register()
