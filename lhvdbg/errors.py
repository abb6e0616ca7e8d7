"""The one exception hierarchy of lhvdbg.

Every error lhvdbg raises on purpose derives from :class:`LhvdbgError`. Boundaries (QEMU,
QMP, gdb/MI, files) wrap the root cause with ``raise ... from exc`` and keep the context a
user needs to act: the QEMU command line, the MI command sent and the reply, the log path.

``str(error)`` is always one line: the CLI prints ``lhvdbg: <str(error)>`` and exits with
``error.exit_code``. Extra context lives in attributes and in :meth:`LhvdbgError.details`.

Tree::

    LhvdbgError
    ├── UsageError              bad arguments or input given by the user (exit 2)
    │   ├── DecodeError         a value that cannot be decoded as the requested layout
    │   └── ScenarioError       a malformed scenario file (file, line, field)
    ├── SnapshotError           a corrupt, truncated or wrong-version snapshot file
    │   └── MemoryNotCaptured   a read outside what a snapshot holds
    ├── ParseError              text from QEMU (HMP, -d int log) that is not understood
    ├── KernelError             a kernel file that is not a bootable ELF/multiboot image
    └── MachineError            anything live: processes, sockets, protocols
        ├── ToolMissingError    qemu-system-* or gdb not installed
        ├── QemuError           QEMU failed to start or died (command line, stderr, log)
        ├── QmpError            a QMP command failed (command, reply)
        ├── GdbError            gdb failed or a MI command returned ^error (command, reply)
        ├── StateError          an operation the session's run state does not allow
        └── TargetTimeout       the guest or a backend (QEMU, QMP, gdb) did not answer in
                                time (what was waited for) — the one timeout type
"""

from __future__ import annotations

from collections.abc import Sequence


class LhvdbgError(Exception):
    """Root of every error lhvdbg raises on purpose; ``str()`` is one line."""

    exit_code = 1

    def __init__(self, message: str, **context: object) -> None:
        super().__init__(" ".join(message.split()))
        self.context: dict[str, object] = dict(context)

    @property
    def message(self) -> str:
        """The one-line message."""
        return str(self.args[0])

    def details(self) -> str:
        """Multi-line context (for ``--verbose`` and logs), empty if none."""
        lines = []
        for key, value in self.context.items():
            if isinstance(value, Sequence) and not isinstance(value, str | bytes):
                value = " ".join(str(v) for v in value)
            lines.append(f"{key}: {value}")
        return "\n".join(lines)


class UsageError(LhvdbgError):
    """The user asked for something that cannot be done as asked."""

    exit_code = 2


class DecodeError(UsageError):
    """A raw value that cannot be decoded as the requested layout."""


class ScenarioError(UsageError):
    """A malformed scenario file; the message names the file, line and field."""


class SnapshotError(LhvdbgError):
    """A snapshot file that is corrupt, truncated, or of an unknown format version."""


class MemoryNotCaptured(SnapshotError):
    """A memory read outside the regions a snapshot holds."""


class ParseError(LhvdbgError):
    """QEMU output (HMP text, ``-d int`` log) that lhvdbg does not understand."""


class KernelError(LhvdbgError):
    """A kernel image that is missing, not an ELF, or not bootable by QEMU."""


class MachineError(LhvdbgError):
    """Root of the live-machine errors (QEMU, QMP, gdb)."""


class ToolMissingError(MachineError):
    """A required program (qemu-system-*, gdb) is not installed."""


class QemuError(MachineError):
    """QEMU failed to start, exited early, or died; context holds command line and log."""


class QmpError(MachineError):
    """A QMP command failed; context holds the command and the reply.

    When QEMU answered with an error, ``error_class`` is QMP's class (``GenericError``,
    ``CommandNotFound``, ``DeviceNotFound``...) and ``desc`` its description, as QEMU sent
    them; both are None for failures that are not QMP error replies.
    """

    def __init__(
        self,
        message: str,
        *,
        error_class: str | None = None,
        desc: str | None = None,
        **context: object,
    ) -> None:
        super().__init__(message, **context)
        self.error_class = error_class
        self.desc = desc


class GdbError(MachineError):
    """gdb died or a MI command failed; context holds the command sent and the reply."""


class StateError(MachineError):
    """An operation asked of a session in a run state that does not allow it.

    ``state`` is the session's run state, ``required`` the states the operation needs
    (``lhvdbg.machine.runstate.Runstate`` members; anything with a ``value`` or ``str``).
    """

    def __init__(
        self,
        state: object,
        required: Sequence[object],
        *,
        what: str = "",
        why: str = "",
        **context: object,
    ) -> None:
        self.state = state
        self.required = tuple(required)
        needs = " or ".join(_state_name(r) for r in self.required)
        head = f"{what}: " if what else ""
        tail = f": {why}" if why else ""
        super().__init__(
            f"{head}the session is {_state_name(state)}{tail} (needs {needs})", **context
        )


def _state_name(state: object) -> str:
    value = getattr(state, "value", state)
    return str(value)


class TargetTimeout(MachineError):
    """The guest or a backend (QEMU, QMP, gdb) did not answer within the time allowed:
    the one timeout error of lhvdbg; ``context`` names what was waited for."""
