"""The QMP client against a stand-in QEMU on a Unix socket: requests go out compact and
without ``id`` (QEMU reads them a byte per main-loop turn), replies are matched by order,
events are filed on the way, error replies keep QMP's structure, and ``changes`` counts
the commands that may change the machine."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lhvdbg.errors import QmpError
from lhvdbg.machine.qmp import QmpClient, is_read_only

GREETING = {"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 22}}}}
Answer = Callable[[dict[str, Any]], list[dict[str, Any]]]


class FakeQemu:
    """Accepts one client, greets it, and answers each request line with ``answer``."""

    def __init__(self, path: Path, answer: Answer) -> None:
        self.received: list[bytes] = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(1)
        self.answer = answer
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        with conn:
            conn.sendall(json.dumps(GREETING).encode() + b"\r\n")
            buffer = b""
            while True:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    self.received.append(line)
                    out = self.answer(json.loads(line))
                    conn.sendall(b"".join(json.dumps(m).encode() + b"\r\n" for m in out))

    def close(self) -> None:
        self.server.close()


def monitor(request: dict[str, Any]) -> list[dict[str, Any]]:
    command = request["execute"]
    if command == "human-monitor-command":
        line = request["arguments"]["command-line"]
        event = {"event": "STOP", "data": {}, "timestamp": {"seconds": 1, "microseconds": 5}}
        return [event, {"return": f"text of {line}\r\n"}]  # an event before the reply
    if command == "no-such-command":
        return [{"error": {"class": "CommandNotFound", "desc": "The command was not found"}}]
    return [{"return": {"status": "paused", "running": False}}]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[QmpClient, FakeQemu]]:
    qemu = FakeQemu(tmp_path / "qmp.sock", monitor)
    qmp = QmpClient(tmp_path / "qmp.sock", timeout=5)
    yield qmp, qemu
    qmp.close()
    qemu.close()


def test_requests_are_compact_without_id_and_replies_match_by_order(
    client: tuple[QmpClient, FakeQemu],
) -> None:
    qmp, qemu = client
    assert qmp.qemu_version == "7.2.22"
    texts = qmp.hmp_many(["info registers", "info pic", "info lapic"])
    assert texts == ["text of info registers\r\n", "text of info pic\r\n", "text of info lapic\r\n"]
    assert qemu.received[0] == b'{"execute":"qmp_capabilities"}'
    assert qemu.received[1] == (
        b'{"execute":"human-monitor-command","arguments":{"command-line":"info registers"}}'
    )
    assert [e.name for e in qmp.events()] == ["STOP", "STOP", "STOP"]
    # a batch collected after a later one still gets its own replies
    first = qmp.send_hmp(["info pic"])
    second = qmp.send([("query-status", None)])
    assert qmp.collect(second) == [{"status": "paused", "running": False}]
    assert qmp.collect(first) == ["text of info pic\r\n"]


def test_an_error_reply_keeps_its_class_and_the_next_reply_stays_in_step(
    client: tuple[QmpClient, FakeQemu],
) -> None:
    qmp, _ = client
    with pytest.raises(QmpError) as err:
        qmp.execute("no-such-command")
    assert err.value.error_class == "CommandNotFound"
    assert err.value.desc == "The command was not found"
    assert qmp.hmp("info pic") == "text of info pic\r\n"


def test_changes_counts_what_is_not_a_read(client: tuple[QmpClient, FakeQemu]) -> None:
    qmp, _ = client
    assert qmp.changes == 0  # qmp_capabilities
    qmp.hmp_many(["info registers", "info pic"])
    qmp.status()
    assert qmp.changes == 0
    qmp.hmp("replay_seek 100")
    qmp.hmp("x /4xb 0")  # a read in fact, but only info commands are known to be
    assert qmp.changes == 2


def test_is_read_only() -> None:
    assert is_read_only("query-status", None)
    assert is_read_only("human-monitor-command", {"command-line": "info lapic"})
    assert not is_read_only("human-monitor-command", {"command-line": "system_reset"})
    assert not is_read_only("human-monitor-command", {"command-line": "information"})
    assert not is_read_only("quit", None)
    assert not is_read_only("memsave", {"val": 0, "size": 1, "filename": "x"})
