"""The HMP client against a stand-in readline monitor on a Unix socket: the banner is
skipped, each reply is what follows the echoed line up to the next ``(qemu)`` prompt
(however the bytes are cut into reads), pipelined lines are answered in order, and
``changes`` counts what is not an ``info`` command."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lhvdbg.errors import QmpError, TargetTimeout
from lhvdbg.machine.monitor import HmpClient, reply_text

BANNER = b"QEMU 7.2.22 monitor - type 'help' for more information\r\n(qemu) "
TEXTS = {
    "info pic": "pic1: irr=00 imr=ff isr=00 hprio=0 irq_base=28\r\n",
    "info lapic": "dumping local APIC state for CPU 0\r\n\r\nLVT0\t 0x00010700\r\n",
    "stop": "",
}


def echo(line: str) -> bytes:
    """Readline's redrawing of a typed line (as QEMU 7.2 prints it), then Enter."""
    out = b""
    for n in range(1, len(line) + 1):
        out += line[:n].encode() + b"\x1b[K" + (b"\x1b[D" * n if n < len(line) else b"")
    return out + b"\r\n"


class FakeMonitor:
    def __init__(self, path: Path, *, silent: bool = False) -> None:
        self.lines: list[str] = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(1)
        self.silent = silent
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        with conn:
            conn.sendall(BANNER[:20])
            time.sleep(0.01)
            conn.sendall(BANNER[20:])
            buffer = b""
            while chunk := conn.recv(4096):
                buffer += chunk
                while b"\n" in buffer:
                    raw, buffer = buffer.split(b"\n", 1)
                    line = raw.decode()
                    self.lines.append(line)
                    if self.silent:
                        continue
                    out = echo(line) + TEXTS.get(line, f"unknown command: '{line}'\r\n").encode()
                    out += b"(qemu) "
                    conn.sendall(out[:-3])  # the prompt arrives in two pieces
                    time.sleep(0.002)
                    conn.sendall(out[-3:])


@pytest.fixture
def monitor(tmp_path: Path) -> Iterator[tuple[HmpClient, FakeMonitor]]:
    fake = FakeMonitor(tmp_path / "hmp.sock")
    client = HmpClient(tmp_path / "hmp.sock", timeout=5)
    yield client, fake
    client.close()
    fake.server.close()


def test_replies_are_the_text_between_the_echo_and_the_prompt(
    monitor: tuple[HmpClient, FakeMonitor],
) -> None:
    client, fake = monitor
    assert client.run("info pic") == TEXTS["info pic"]
    pending = client.send(["info lapic", "stop", "info pic"])
    assert client.collect(pending) == [TEXTS["info lapic"], "", TEXTS["info pic"]]
    assert fake.lines == ["info pic", "info lapic", "stop", "info pic"]
    assert client.changes == 1  # "stop"


def test_batches_collected_out_of_order_get_their_own_replies(
    monitor: tuple[HmpClient, FakeMonitor],
) -> None:
    client, _ = monitor
    first = client.send(["info pic"])
    second = client.send(["info lapic"])
    assert client.collect(second) == [TEXTS["info lapic"]]
    assert client.collect(first) == [TEXTS["info pic"]]


def test_lines_readline_would_not_take_as_they_are_are_refused(
    monitor: tuple[HmpClient, FakeMonitor],
) -> None:
    client, fake = monitor
    assert not HmpClient.accepts("info\tpic") and not HmpClient.accepts("x /4xb 0\x1b")
    assert HmpClient.accepts("xp /16bx 0x1000") and HmpClient.accepts("quitting-is-not-a-command")
    assert not HmpClient.accepts("quit") and not HmpClient.accepts("q")  # no prompt after
    assert not HmpClient.accepts("x" * 4000)  # readline would cut it
    with pytest.raises(ValueError, match="not a line for readline"):
        client.send(["info\tpic"])
    assert fake.lines == []


def test_no_reply_in_time_is_the_one_timeout_and_a_closed_client_refuses(
    tmp_path: Path,
) -> None:
    fake = FakeMonitor(tmp_path / "hmp.sock", silent=True)
    client = HmpClient(tmp_path / "hmp.sock", timeout=5)
    try:
        with pytest.raises(TargetTimeout, match="HMP: no reply to info pic in time"):
            client.run("info pic", timeout=0.05)
    finally:
        client.close()
        fake.server.close()
    with pytest.raises(QmpError, match="closed"):
        client.run("info pic")


def test_reply_text() -> None:
    assert reply_text(echo("info pic") + b"a\r\nb\r\n") == "a\r\nb\r\n"
    assert reply_text(echo("stop")) == ""
