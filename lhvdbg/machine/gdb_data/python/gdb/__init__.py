"""gdb's ``gdb`` Python package, loaded on first use, for the gdb lhvdbg drives over MI.

lhvdbg starts its own gdb with ``--data-directory`` set to the folder that holds this
file's ``python`` folder (:mod:`lhvdbg.machine.gdbmi`); gdb imports this package as it
starts. It defines only what gdb's C code asks for at start and at each stop: the printer,
filter and unwinder lists, ``_execute_unwinders``, and Python output through gdb. Any
other name (``gdb.current_progspace``, ``gdb.execute_unwinders`` of a user's unwinder...)
first runs gdb's own ``gdb/__init__.py`` from the system's data directory (the
environment's ``LHVDBG_GDB_DATA_DIRECTORY``) into this module, lists kept; its submodules
(``gdb.printing``, ``gdb.unwinder``...) come from there too.

Why: that package imports traceback, tokenize and gdb's own commands, ~30 ms of every
gdb start (a third of it) on the 2-core machine, and MI needs none of it. This file runs
inside gdb's Python, never in lhvdbg's.
"""

from __future__ import annotations

import os
import sys

import _gdb
import _gdbevents as events
from _gdb import *  # noqa: F403  (gdb's C API: execute, parameter, Value...)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~10 ms in gdb)
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

sys.modules["gdb.events"] = events

_SYSTEM = os.path.join(
    os.environ.get("LHVDBG_GDB_DATA_DIRECTORY", "/usr/share/gdb"), "python", "gdb"
)
__path__ = [_SYSTEM]


class _Output:
    """Python's stdout/stderr written through gdb (on MI: its console and log streams)."""

    encoding = "UTF-8"
    errors = "strict"

    def __init__(self, stream: int) -> None:
        self.stream = stream

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> None:
        _gdb.write(text, stream=self.stream)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        _gdb.flush(stream=self.stream)

    def close(self) -> None:
        pass


sys.stdout = _Output(_gdb.STDOUT)
sys.stderr = _Output(_gdb.STDERR)

prompt_hook: Any = None
pretty_printers: list[Any] = []
type_printers: list[Any] = []
xmethods: list[Any] = []
frame_filters: dict[str, Any] = {}
frame_unwinders: list[Any] = []
_LISTS = ("pretty_printers", "type_printers", "xmethods", "frame_filters", "frame_unwinders")


def _execute_unwinders(pending_frame: Any) -> Any:
    """No unwinder claims the frame while none was registered (gdb asks at each stop);
    else gdb's own function decides."""
    if not frame_unwinders and "gdb.unwinder" not in sys.modules:
        return None
    return _system_package()["_execute_unwinders"](pending_frame)


def _system_package() -> dict[str, Any]:
    """This module's namespace with gdb's own package run into it (once); the lists
    keep what was registered before, and gain what its start-up registers."""
    here = globals()
    if here.get("_system_loaded"):
        return here
    here["_system_loaded"] = True
    kept = {name: here[name] for name in _LISTS}
    path = os.path.join(_SYSTEM, "__init__.py")
    with open(path, encoding="utf-8") as source:
        code = compile(source.read(), path, "exec")
    here["__file__"] = path
    exec(code, here)
    for name, old in kept.items():
        new = here[name]
        if isinstance(old, dict):
            old.update({k: v for k, v in new.items() if k not in old})
        else:
            old.extend(item for item in new if item not in old)
        here[name] = old
    return here


def __getattr__(name: str) -> Any:
    namespace = _system_package()
    if name in namespace:
        return namespace[name]
    raise AttributeError(f"module 'gdb' has no attribute {name!r}")
