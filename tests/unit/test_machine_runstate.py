"""The explicit run state: its transition table, the debug log of each change, and the
``require`` guard (StateError with the state and the states needed), on a stand-in
machine and on a Session that was never started (no QEMU, no gdb)."""

from __future__ import annotations

import logging

import pytest

from lhvdbg.errors import GdbError, MachineError, QemuError, StateError
from lhvdbg.machine.runstate import (
    INSPECTABLE,
    TRANSITIONS,
    Runstate,
    RunstateMachine,
    require,
    state_after_stop,
)
from lhvdbg.machine.session import Session

S = Runstate
ALLOWED = {
    (S.CLOSED, S.STARTING),
    (S.STARTING, S.STOPPED),
    (S.STARTING, S.CLOSED),
    (S.STOPPED, S.RUNNING),
    (S.STOPPED, S.SHUTDOWN),
    (S.STOPPED, S.EXITED),
    (S.STOPPED, S.CLOSED),
    (S.RUNNING, S.STOPPED),
    (S.RUNNING, S.SHUTDOWN),
    (S.RUNNING, S.EXITED),
    (S.RUNNING, S.CLOSED),
    (S.SHUTDOWN, S.EXITED),
    (S.SHUTDOWN, S.CLOSED),
    (S.EXITED, S.CLOSED),
}


class Machine(RunstateMachine):
    """A stand-in: counts refreshes, can be told QEMU died, and has guarded methods."""

    def __init__(self, *path: Runstate) -> None:
        self.refreshes = 0
        self.qemu_gone = False  # found gone by the next refresh
        self.killed_during_call = False  # found gone after a backend failure
        for state in path:
            self.set_runstate(state)

    def refresh_runstate(self) -> None:
        self.refreshes += 1
        if self.qemu_gone and self.runstate is S.STOPPED:
            self.set_runstate(S.EXITED)

    def state_reason(self) -> str:
        return "QEMU has exited (status 0)" if self.runstate is S.EXITED else ""

    def backend_failed(self, exc: Exception, what: str) -> Exception | None:
        if not self.killed_during_call:
            return None
        return QemuError(f"{what}: QEMU was killed by SIGKILL")

    @require(*INSPECTABLE)
    def read_memory(self, address: int) -> int:
        return address + 1

    @require(S.STOPPED)
    def fail_in_gdb(self) -> None:
        raise GdbError("gdb: Remote communication error", command="-data-read-memory-bytes")


def walk(state: Runstate) -> list[Runstate]:
    """A path of allowed transitions from CLOSED to ``state``."""
    paths = {
        S.CLOSED: [],
        S.STARTING: [S.STARTING],
        S.STOPPED: [S.STARTING, S.STOPPED],
        S.RUNNING: [S.STARTING, S.STOPPED, S.RUNNING],
        S.SHUTDOWN: [S.STARTING, S.STOPPED, S.RUNNING, S.SHUTDOWN],
        S.EXITED: [S.STARTING, S.STOPPED, S.RUNNING, S.EXITED],
    }
    return paths[state]


def test_the_table_is_the_diagram() -> None:
    table = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert table == ALLOWED
    assert set(TRANSITIONS) == set(Runstate)


@pytest.mark.parametrize("old", list(Runstate))
@pytest.mark.parametrize("new", list(Runstate))
def test_every_transition_is_allowed_or_refused_by_the_table(old: Runstate, new: Runstate) -> None:
    m = Machine(*walk(old))
    assert m.runstate is old
    if old is new or (old, new) in ALLOWED:
        m.set_runstate(new)
        assert m.runstate is new
    else:
        with pytest.raises(RuntimeError, match=f"runstate {old.name} -> {new.name}"):
            m.set_runstate(new)
        assert m.runstate is old


def test_each_change_is_logged_at_debug_level(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="lhvdbg.machine.runstate"):
        Machine(S.STARTING, S.STOPPED, S.STOPPED, S.RUNNING)
    assert [r.getMessage() for r in caplog.records] == [
        "runstate CLOSED -> STARTING",
        "runstate STARTING -> STOPPED",
        "runstate STOPPED -> RUNNING",
    ]
    assert {r.levelno for r in caplog.records} == {logging.DEBUG}


def test_the_guard_lets_the_required_states_through() -> None:
    assert Machine(*walk(S.STOPPED)).read_memory(1) == 2
    assert Machine(*walk(S.SHUTDOWN)).read_memory(2) == 3


@pytest.mark.parametrize("state", [S.CLOSED, S.STARTING, S.RUNNING, S.EXITED])
def test_the_guard_refuses_the_other_states(state: Runstate) -> None:
    m = Machine(*walk(state))
    with pytest.raises(StateError) as err:
        m.read_memory(1)
    assert err.value.state is state
    assert err.value.required == (S.STOPPED, S.SHUTDOWN)
    assert isinstance(err.value, MachineError)
    why = ": QEMU has exited (status 0)" if state is S.EXITED else ""
    assert str(err.value) == (
        f"read memory: the session is {state.value}{why} (needs stopped or shut down)"
    )


def test_the_guard_refreshes_first() -> None:
    m = Machine(*walk(S.STOPPED))
    m.qemu_gone = True  # the process died since the last call
    with pytest.raises(StateError, match="the session is exited: QEMU has exited"):
        m.read_memory(1)
    assert m.refreshes == 1 and m.runstate is S.EXITED


def test_a_backend_failure_is_explained_when_the_machine_can() -> None:
    m = Machine(*walk(S.STOPPED))
    with pytest.raises(GdbError, match="Remote communication error"):
        m.fail_in_gdb()  # nothing better to say: the gdb error stands
    m.killed_during_call = True
    with pytest.raises(QemuError, match="fail in gdb: QEMU was killed by SIGKILL") as err:
        m.fail_in_gdb()
    assert isinstance(err.value.__cause__, GdbError)


def test_the_guard_records_what_it_requires() -> None:
    assert Machine.read_memory.required_states == (S.STOPPED, S.SHUTDOWN)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("reason", "now", "after"),
    [
        ("step", S.RUNNING, S.STOPPED),
        ("breakpoint", S.RUNNING, S.STOPPED),
        ("timeout", S.RUNNING, S.STOPPED),
        ("shutdown", S.RUNNING, S.SHUTDOWN),
        ("exited", S.RUNNING, S.EXITED),
        ("exited", S.SHUTDOWN, S.EXITED),
        ("vector", S.SHUTDOWN, S.SHUTDOWN),  # a shut-down machine stays so
    ],
)
def test_state_after_a_stop(reason: str, now: Runstate, after: Runstate) -> None:
    assert state_after_stop(reason, now) is after


# --- a Session never started: every live operation is refused the same way ----------

READS = [
    ("read_memory", (0x1000, 4)),
    ("read_memory_many", ([(0x1000, 4)],)),
    ("read_memory_readable", ([(0x1000, 4)],)),
    ("write_memory", (0x1000, b"\0")),
    ("read_registers", ()),
    ("register_numbers", ()),
    ("write_register", ("rax", 1)),
    ("read_string", (0x1000,)),
    ("backtrace", ()),
    ("hmp", ("info registers",)),
    ("pc", ()),
    ("capture", ()),
    ("break_at", (0x1000,)),
    ("watch", (0x1000, 8)),
    ("delete", ()),
]


@pytest.fixture
def closed() -> Session:
    return Session.__new__(Session)  # no __init__: nothing started, runstate CLOSED


@pytest.mark.parametrize(("name", "args"), READS, ids=[n for n, _ in READS])
def test_every_read_of_a_closed_session_is_refused_alike(
    closed: Session, name: str, args: tuple[object, ...]
) -> None:
    assert closed.runstate is S.CLOSED
    with pytest.raises(StateError) as err:
        getattr(closed, name)(*args)
    assert err.value.state is S.CLOSED
    assert err.value.required == INSPECTABLE
    assert str(err.value).startswith(name.replace("_", " ") + ": the session is closed")


@pytest.mark.parametrize(
    ("name", "args"),
    [("cont", ()), ("stepi", ()), ("interrupt", ()), ("run_to_vector", (8,)), ("run_to_timer", ())],
)
def test_run_control_of_a_closed_session_is_refused(
    closed: Session, name: str, args: tuple[object, ...]
) -> None:
    kwargs = {"timeout": 1.0} if name in ("cont", "run_to_vector", "run_to_timer") else {}
    with pytest.raises(StateError, match=f"^{name.replace('_', ' ')}: the session is closed"):
        getattr(closed, name)(*args, **kwargs)
