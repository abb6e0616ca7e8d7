"""gdb/MI parsing and token matching on real recorded gdb 13.1 output (tests/fixtures/mi).

The transcripts come from ``tests/fixtures/mi/record.py`` (gdb connected to QEMU 7.2 with
the LHV firmware). ``replay.py`` plays one back as a fake gdb so :class:`GdbMi` runs its
real I/O path (pipelining, token matching, ``*stopped`` queueing) offline; it answers a
command only when it is the one recorded for its token (``NAME.commands``), so these
tests also prove what lhvdbg sends.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from lhvdbg.errors import GdbError
from lhvdbg.machine.gdbmi import GdbMi, MiMatcher, parse_mi_lines, result_or_raise
from lhvdbg.machine.memory import (
    memory_runs,
    merge_runs,
    page_pieces,
    read_readable,
    requested_address,
    uncovered_ranges,
    whole_contents,
)

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
        assert gdb.command("-exec-continue").message == "running"
        stop = gdb.wait_stopped(2.0)
        assert stop is not None and stop.payload["reason"] == "breakpoint-hit"
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


def recorded(name: str) -> dict[int, str]:
    """The commands a transcript was recorded with (paths filled in), by token."""
    out = {}
    for line in (FIXTURES / f"{name}.commands").read_text().splitlines():
        if line and not line.startswith("#"):
            token, command = line.split("\t", 1)
            out[int(token)] = command.replace("{elf}", "k.elf").replace("{gdb_sock}", "s")
    return out


def replay_until(gdb: GdbMi, name: str, token: int) -> None:
    """Send the recorded commands before ``token`` (waiting for each run's stop)."""
    for n, command in sorted(recorded(name).items()):
        if n >= token:
            break
        gdb._next_token = n
        gdb.command(command)
        if command.startswith("-exec-") and command != "-exec-interrupt":
            gdb.wait_stopped(2.0)


def test_gdbmi_counts_the_commands_that_may_change_the_machine(fake_gdb) -> None:  # type: ignore[no-untyped-def]
    gdb = fake_gdb("connect-break-step-amd64.mi")
    try:
        replay_until(gdb, "connect-break-step-amd64", 7)  # set-up, two breakpoints
        assert gdb.changes == 6
        gdb.command("-exec-continue")
        gdb.wait_stopped(2.0)
        assert gdb.changes == 7
        gdb.command("-data-list-register-values x 0 16 17")
        gdb.command("-data-read-memory-bytes 0x1037f0 16")
        assert gdb.changes == 7  # reads change nothing
        gdb.command("-exec-step-instruction")
        assert gdb.changes == 8
    finally:
        gdb.close()


def test_gdbmi_batch_without_check_reports_errors_inline(fake_gdb) -> None:  # type: ignore[no-untyped-def]
    gdb = fake_gdb("connect-break-step-amd64.mi")
    try:
        replay_until(gdb, "connect-break-step-amd64", 13)
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


# --- reads that keep what is readable (tests/fixtures/mi/partial-read.mi) --------------
# Recorded at the stack-overflow triple fault: boot_stack_guard was the not-present page
# 0x10a000..0x10b000; gdt was at 0x1037f0.
GUARD = 0x10A000
GDT = 0x1037F0


def test_gdb_head_read_ends_one_byte_past_the_page_and_is_cut_back() -> None:
    m = fed("partial-read.mi")
    payload = m.results[7][0].payload
    assert payload["memory"][0]["end"] == "0x000000000010a001"  # gdb's extra (unread) byte
    runs = memory_runs(payload, GUARD - 0x10, 0x1020)
    assert [(a, len(d)) for a, d in runs] == [(GUARD - 0x10, 0x10)]
    assert runs[0][1] == bytes.fromhex("8300c0ff000000008300e0ff00000000")
    tail = memory_runs(m.results[6][0].payload, GUARD + 0xEC0, 0x300)
    assert [(a, len(d)) for a, d in tail] == [(GUARD + 0x1000, 0x1C0)]
    with pytest.raises(GdbError, match=r"gdb returned 16 of 4128 bytes at 0x109ff0"):
        whole_contents(payload, GUARD - 0x10, 0x1020)


def test_run_helpers() -> None:
    assert merge_runs([(0x20, b"cd"), (0x10, b"ab"), (0x12, b"xyz"), (0x13, b"y")]) == [
        (0x10, b"abxyz"),
        (0x20, b"cd"),
    ]
    runs = [(0x1010, b"a" * 0x10), (0x3000, b"b" * 0x100)]
    assert uncovered_ranges(runs, 0x1000, 0x3200) == [
        (0x1000, 0x1010),
        (0x1020, 0x3000),
        (0x3100, 0x3200),
    ]
    assert uncovered_ranges([], 5, 9) == [(5, 9)]
    assert uncovered_ranges([(0, b"x" * 16)], 0, 16) == []
    assert page_pieces(0xFF0, 0x2010) == [(0xFF0, 0x10), (0x1000, 0x1000), (0x2000, 0x10)]
    assert page_pieces(0x1000, 0x1000) == []


def _at_triple_fault(fake_gdb) -> GdbMi:  # type: ignore[no-untyped-def]
    gdb = fake_gdb("partial-read.mi")
    gdb.batch(
        [
            "-gdb-set mi-async on",
            "-gdb-set architecture i386:x86-64",
            '-file-symbol-file "/x/lhv-stack-overflow.elf"',
            "-target-select remote /tmp/lhvdbg-x/gdb.sock",
        ]
    )
    gdb.drain_stopped()  # the stop at the reset vector
    gdb.command("-exec-continue")
    stop = gdb.wait_stopped(2.0)
    assert stop is not None and stop.payload["signal-name"] == "SIGQUIT"
    return gdb  # type: ignore[no-any-return]


def test_read_readable_keeps_the_readable_parts(fake_gdb) -> None:  # type: ignore[no-untyped-def]
    gdb = _at_triple_fault(fake_gdb)
    try:
        regions = [(GUARD + 0xEC0, 0x300), (GUARD - 0x10, 0x1020), (GUARD + 0x100, 16), (GDT, 16)]
        got = read_readable(gdb, regions)
        assert gdb._next_token == 14  # 4 reads, then the 4 pages left over: two round trips
        stack, across, inside, gdt = ([(a, len(d)) for a, d in r] for r in got)
        assert stack == [(GUARD + 0x1000, 0x1C0)]
        # the hole in the middle does not hide the page after it (read page by page)
        assert across == [(GUARD - 0x10, 0x10), (GUARD + 0x1000, 0x10)]
        assert got[1][1][1] == got[0][0][1][:0x10]  # the same bytes at 0x10b000 both times
        assert inside == []
        assert gdt == [(GDT, 16)] and got[3][0][1][8:] == bytes.fromhex("ffff0000009aaf00")
    finally:
        gdb.close()


def test_a_reply_names_the_address_it_was_asked_for() -> None:
    # how a read given as an expression ($sp-0x100) is told apart after the fact
    m = fed("partial-read.mi")
    assert requested_address(m.results[6][0].payload) == GUARD + 0xEC0  # tail: offset 0x140
    assert requested_address(m.results[7][0].payload) == GUARD - 0x10
    assert requested_address({"memory": []}) is None
    assert requested_address({}) is None


def test_read_readable_reads_nothing_it_already_knows(fake_gdb) -> None:  # type: ignore[no-untyped-def]
    gdb = _at_triple_fault(fake_gdb)
    try:
        gdb._next_token = 9
        data = bytes.fromhex("0000000000000000ffff0000009aaf00")
        assert read_readable(gdb, [(GDT, 16)], {(GDT, 16): [(GDT, data)]}) == [[(GDT, data)]]
        assert gdb._next_token == 9  # not a command was written
    finally:
        gdb.close()


def test_read_readable_fast_path_is_one_round_trip(fake_gdb) -> None:  # type: ignore[no-untyped-def]
    gdb = _at_triple_fault(fake_gdb)
    try:
        gdb._next_token = 9  # the token of the gdt read in the recording
        assert read_readable(gdb, [(GDT, 16)]) == [
            [(GDT, bytes.fromhex("0000000000000000ffff0000009aaf00"))]
        ]
        assert gdb._next_token == 10  # nothing was read again
    finally:
        gdb.close()


# --- the replay gdb answers only the recorded commands ---------------------------------


def test_replay_refuses_a_command_that_was_not_recorded(fake_gdb) -> None:  # type: ignore[no-untyped-def]
    gdb = fake_gdb("connect-break-step-amd64.mi")
    try:
        replay_until(gdb, "connect-break-step-amd64", 5)
        gdb._next_token = 5  # recorded: -break-insert *0x102280
        with pytest.raises(GdbError) as err:
            gdb.command("-break-insert *0x102281")
        assert str(err.value) == (
            "gdb: -break-insert: replay: command 5 is not the recorded one: "
            "-break-insert *0x102281 (recorded: -break-insert *0x102280)"
        )
        # the right command for the same token is still answered as recorded
        gdb._next_token = 5
        assert gdb.command("-break-insert *0x102280").payload["bkpt"]["number"] == "1"
        gdb._next_token = 40
        with pytest.raises(GdbError, match="replay: no command 40 was recorded"):
            gdb.command("-break-list")
    finally:
        gdb.close()


def test_read_readable_sends_the_recorded_reads_in_order(fake_gdb) -> None:  # type: ignore[no-untyped-def]
    # a read of another size at the recorded token is refused: the region plan matters
    gdb = _at_triple_fault(fake_gdb)
    try:
        gdb._next_token = 9  # recorded: -data-read-memory-bytes 0x1037f0 16
        with pytest.raises(GdbError, match="not the recorded one"):
            gdb.command("-data-read-memory-bytes 0x1037f0 32")
    finally:
        gdb.close()
