"""gdb/MI parsing and token matching on real recorded gdb 13.1 output (tests/fixtures/mi).

The transcripts come from ``tests/fixtures/mi/record.py`` (gdb connected to QEMU 7.2 with
the LHV firmware). ``replay.py`` plays one back as a fake gdb so :class:`GdbMi` runs its
real I/O path (pipelining, token matching, ``*stopped`` queueing) offline.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from lhvdbg.errors import GdbError
from lhvdbg.machine.gdbmi import GdbMi, MiMatcher, parse_mi_lines, result_or_raise

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "mi"


def records(name: str) -> list:  # type: ignore[type-arg]
    return parse_mi_lines((FIXTURES / name).read_text())


def fed(name: str) -> MiMatcher:
    matcher = MiMatcher()
    matcher.feed(records(name))
    return matcher


def test_every_result_is_matched_to_its_token() -> None:
    m = fed("connect-break-step-amd64.mi")
    messages = {t: m.results[t][0].message for t in sorted(m.results)}
    assert messages == {
        1: "done", 2: "done", 3: "done", 4: "connected", 5: "done", 6: "done",
        7: "running", 8: "done", 9: "done", 10: "running", 11: "done", 12: "running",
        13: "error", 14: "done",
    }  # fmt: skip
    # async and stream records are kept with the result that followed them
    companions = m.results[4][1]
    assert [r.message for r in companions if r.type == "notify"] == [
        "thread-group-started",
        "thread-created",
    ]


def test_stopped_records_are_queued_in_order() -> None:
    m = fed("connect-break-step-amd64.mi")
    stops = list(m.stopped)
    reasons = [s.payload.get("reason") for s in stops]
    assert reasons == [None, "breakpoint-hit", "end-stepping-range", "breakpoint-hit"]
    assert stops[0].payload["frame"]["addr"] == "0x000000000000fff0"  # the reset vector
    assert stops[1].payload["bkptno"] == "1"
    assert stops[1].payload["frame"]["func"] == "kernel_main"
    assert int(stops[2].payload["frame"]["addr"], 16) == 0x102281  # one instruction on
    assert stops[3].payload["bkptno"] == "2" and stops[3].payload["frame"]["func"] == "isr_32"
    assert not m.running


def test_breakpoint_and_register_payloads() -> None:
    m = fed("connect-break-step-amd64.mi")
    bkpt = m.results[5][0].payload["bkpt"]
    assert (bkpt["number"], bkpt["type"], bkpt["addr"]) == (
        "1",
        "breakpoint",
        "0x0000000000102280",
    )
    assert m.results[6][0].payload["bkpt"]["type"] == "hw breakpoint"
    regs = {r["number"]: r["value"] for r in m.results[8][0].payload["register-values"]}
    assert regs == {"0": "0x80000018", "16": "0x102280", "17": "0x86"}  # rax, rip, eflags
    mem = m.results[9][0].payload["memory"][0]
    # the GDT: null descriptor, then the 64-bit code segment (access 0x9a, flags 0xa)
    assert mem["contents"] == "0000000000000000ffff0000009aaf00"
    table = m.results[14][0].payload["BreakpointTable"]
    assert [b["number"] for b in table["body"]] == ["2"]


def test_error_result_raises_gdb_error_with_context() -> None:
    m = fed("connect-break-step-amd64.mi")
    found = m.take(13)
    assert found is not None
    with pytest.raises(GdbError) as err:
        result_or_raise("-data-read-memory-bytes 0xfffffffffffff000 8", 13, found)
    assert str(err.value) == "gdb: -data-read-memory-bytes: Unable to read memory."
    assert err.value.context["reply"] == "Unable to read memory."
    assert err.value.context["command"].startswith("-data-read-memory-bytes")
    assert m.take(13) is None  # taken once


def test_elf32_with_x86_64_architecture_has_no_g_packet_error() -> None:
    recs = records("connect-i386-elf32.mi")
    text = (FIXTURES / "connect-i386-elf32.mi").read_text()
    assert "'g' packet" not in text and "too long" not in text
    m = MiMatcher()
    m.feed(recs)
    assert m.results[4][0].message == "connected"
    assert m.results[5][0].payload["register-values"] == [{"number": "16", "value": "0xfff0"}]
    assert m.results[8][0].payload["value"] == "0x102150 <kernel_main>"


def test_interrupt_then_qemu_exit() -> None:
    m = fed("interrupt-and-exit.mi")
    stops = list(m.stopped)
    assert stops[-1].payload["signal-name"] == "SIGINT"
    assert m.results[6][0].message == "done"  # -exec-interrupt answers before the stop
    assert m.running  # 7^running, then QEMU went away: no *stopped ever came
    assert any(r.type == "log" and "Remote connection closed" in r.payload for r in m.others)


def test_triple_fault_stop_is_sigquit_and_watchpoint_is_hardware() -> None:
    m = fed("triple-fault.mi")
    assert m.results[5][0].payload["wpt"]["number"] == "1"
    body = m.results[6][0].payload["BreakpointTable"]["body"]
    assert body[0]["type"] == "hw watchpoint"
    assert list(m.stopped)[-1].payload["signal-name"] == "SIGQUIT"


# --- GdbMi's real I/O against a replayed gdb -----------------------------------------


@pytest.fixture
def fake_gdb(tmp_path: Path):  # type: ignore[no-untyped-def]
    def make(transcript: str) -> GdbMi:
        script = tmp_path / "gdb"
        script.write_text(
            f"#!/bin/sh\nexec {sys.executable} {FIXTURES / 'replay.py'} {FIXTURES / transcript}\n"
        )
        os.chmod(script, 0o755)
        return GdbMi(str(script), timeout=5)

    return make


def test_gdbmi_pipelines_and_matches_tokens(fake_gdb) -> None:  # type: ignore[no-untyped-def]
    gdb = fake_gdb("connect-break-step-amd64.mi")
    try:
        results = gdb.batch(
            [
                "-gdb-set mi-async on",
                "-gdb-set architecture i386:x86-64",
                "-file-symbol-file k.elf",
                "-target-select remote s",
                "-break-insert *0x102280",
                "-break-insert -h *0x1002e0",
            ]
        )
        assert [r.message for r in results] == ["done"] * 3 + ["connected", "done", "done"]
        assert results[1].console() == 'The target architecture is set to "i386:x86-64".\n'
        assert gdb.pending_stopped() is not None  # the stop at the reset vector
        started = time.monotonic()
        assert gdb.command("-exec-continue").message == "running"
        stop = gdb.wait_stopped(2.0)
        assert stop is not None and stop.payload["reason"] == "breakpoint-hit"
        assert time.monotonic() - started < 0.5  # no fixed 0.2 s reads
        regs = gdb.command("-data-list-register-values x 0 16 17")
        assert regs.payload["register-values"][1]["value"] == "0x102280"
        gdb.batch(["-data-read-memory-bytes 0x1037f0 16"])
        assert gdb.command("-exec-step-instruction").message == "running"
        assert gdb.wait_stopped(2.0).payload["reason"] == "end-stepping-range"  # type: ignore[union-attr]
        gdb.command("-break-delete 1")
        gdb.command("-exec-continue")
        assert gdb.wait_stopped(2.0) is not None
        with pytest.raises(GdbError, match="Unable to read memory"):
            gdb.command("-data-read-memory-bytes 0xfffffffffffff000 8")
        assert gdb.alive
    finally:
        gdb.close()
    assert not gdb.alive


def test_gdbmi_batch_without_check_reports_errors_inline(fake_gdb) -> None:  # type: ignore[no-untyped-def]
    gdb = fake_gdb("connect-break-step-amd64.mi")
    try:
        for n in range(1, 13):  # advance the replay to token 13
            gdb._next_token = n
            if n in (7, 10, 12):
                gdb.command("-exec-continue")
                gdb.wait_stopped(2.0)
            else:
                gdb.command(f"-cmd{n}")
        got = gdb.batch(
            ["-data-read-memory-bytes 0xfffffffffffff000 8", "-break-list"], check=False
        )
        assert [r.message for r in got] == ["error", "done"]
        assert got[0].payload["msg"] == "Unable to read memory."
    finally:
        gdb.close()


def test_gdbmi_reports_gdb_death(fake_gdb) -> None:  # type: ignore[no-untyped-def]
    gdb = fake_gdb("interrupt-and-exit.mi")
    try:
        gdb.process.kill()
        with pytest.raises(GdbError, match="gdb"):
            gdb.command("-gdb-set mi-async on", timeout=2)
    finally:
        gdb.close()
