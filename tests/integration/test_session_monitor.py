"""The HMP monitor socket and what a capture keeps, on the real firmware in QEMU (TCG).

The texts of the HMP socket are QMP's to the byte; a capture at the same stop is served
without a request; after a step, or after a command that may change the machine (a
register written through gdb, an HMP command that is not ``info``), everything is read
again and agrees with plain reads made then.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lhvdbg.machine.session import LaunchConfig, Session
from lhvdbg.state.snapshot import Snapshot

pytestmark = pytest.mark.integration

TEXTS = ("info registers", "info pic", "info lapic")


def regions(snap: Snapshot) -> list[tuple[str, int, bytes]]:
    return [(r.label, r.address, r.data) for r in snap.memory]


@pytest.mark.parametrize("arch", ["amd64", "i386"])
def test_hmp_socket_texts_are_qmps_and_captures_follow_the_machine(
    firmware_built: Path, arch: str
) -> None:
    with Session(LaunchConfig.for_variant("good", arch)) as s:
        assert s.run_to_timer(count=1, timeout=10).reason == "vector"
        for command in (*TEXTS, "xp /16bx 0x100000"):
            assert s.monitor.run(command) == s.qmp.hmp(command), command
        first = s.capture()
        sent = (s.gdb.changes, len(s.gdb.transcript))
        again = s.capture()
        assert (s.gdb.changes, len(s.gdb.transcript)) == sent  # not a command to gdb
        assert regions(again) == regions(first) and again.hmp == first.hmp

        step = s.stepi()
        assert step.reason == "step"
        after = s.capture()
        assert after.cpu.ip == step.address != first.cpu.ip
        assert after.hmp == {c: s.qmp.hmp(c) for c in TEXTS}
        for label, address, data in regions(after):
            assert s.read_memory(address, len(data)) == data, label
        stack = after.region("stack")
        assert stack is not None and stack.address == after.cpu.sp - 0x100

        # a register written behind the capture's back (through gdb) is seen
        name = "rax" if arch == "amd64" else "eax"
        s.write_register(name, 0x1234ABCD)
        assert s.capture().cpu.gprs[name] == 0x1234ABCD
        # an HMP command that may change the machine makes the texts be read again
        version = s.machine_version()
        s.hmp("help info")
        assert s.machine_version() != version
