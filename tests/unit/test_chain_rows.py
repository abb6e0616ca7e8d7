"""The chain as QEMU's log has it: every raise a row, delivered or folded into the next.

Exact rows, as ``--json`` prints them, from the plain recorded logs of
``tests/fixtures/intlog`` (QEMU 7.2, TCG, ``-d int,cpu_reset``). A raise QEMU logs only
as ``check_exception old: X new Y`` with no ``v=`` line of its own was folded into the
#DF (or, during #DF delivery, into the triple fault): ``delivered`` false and a null error
code, since the log gives none for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lhvdbg.diagnose.chain import build_chain
from lhvdbg.diagnose.events import InterruptEvent
from lhvdbg.diagnose.evidence import StopInfo, evidence_from_snapshot
from lhvdbg.diagnose.intlog import parse_int_log
from lhvdbg.diagnose.report import FOLDED_ERROR_CODE_NOTE, chain_to_json, make_report
from lhvdbg.state.snapshot import load_snapshot

INTLOG = Path(__file__).resolve().parent.parent / "fixtures" / "intlog"
KEYS = ("vector", "name", "source", "error_code", "delivered", "folded_into", "log_line")


def rows(name: str) -> list[tuple[Any, ...]]:
    chain = build_chain(parse_int_log((INTLOG / name).read_text()))
    return [tuple(row[k] for k in KEYS) for row in chain_to_json(chain)]


def test_timer_gate_missing_amd64_irq_np_np_folded_df() -> None:
    # 62: v=20 after 'Servicing hardware INT=0x20'; 84: v=0b e=0202 (QEMU's vector*16+2);
    # 105: 'check_exception old: 0xb new 0xb' with no v= of its own; 106: v=08.
    assert rows("lhv-timer-gate-missing.amd64.log") == [
        (0x20, "0x20", "hardware", None, True, None, 62),
        (0x0B, "#NP", "exception", 0x202, True, None, 84),
        (0x0B, "#NP", "exception", None, False, "#DF", 105),
        (0x08, "#DF", "exception", 0, True, None, 106),
    ]


def test_timer_gate_missing_i386_has_the_same_rows_with_a_cpu_style_code() -> None:
    assert rows("lhv-timer-gate-missing.i386.log") == [
        (0x20, "0x20", "hardware", None, True, None, 59),
        (0x0B, "#NP", "exception", 0x102, True, None, 79),
        (0x0B, "#NP", "exception", None, False, "#DF", 98),
        (0x08, "#DF", "exception", 0, True, None, 99),
    ]


@pytest.mark.parametrize(
    ("arch", "lines"), [("amd64", (61, 82, 83, 104)), ("i386", (59, 78, 79, 98))]
)
def test_stack_overflow_triple_faults_last_raise_is_a_row(
    arch: str, lines: tuple[int, ...]
) -> None:
    chain = build_chain(parse_int_log((INTLOG / f"lhv-stack-overflow.{arch}.log").read_text()))
    assert chain.triple_fault is not None and chain.triple_fault.line == lines[-1] + 1
    assert rows(f"lhv-stack-overflow.{arch}.log") == [
        (0x0E, "#PF", "exception", 0x2, True, None, lines[0]),
        (0x0E, "#PF", "exception", None, False, "#DF", lines[1]),
        (0x08, "#DF", "exception", 0, True, None, lines[2]),
        (0x0E, "#PF", "exception", None, False, "triple fault", lines[3]),
    ]
    # The #DF's delivery raised the last #PF; a folded raise itself raised nothing.
    assert [s.cause_of_next for s in chain.steps] == [True, False, True, False]
    assert chain.stop_index == 2


def test_iret_bad_ss_np_that_made_the_gp_a_df_is_a_row() -> None:
    assert rows("lhv-iret-bad-ss.amd64.log") == [
        (0x0D, "#GP", "exception", 0x8, True, None, 84),
        (0x0B, "#NP", "exception", None, False, "#DF", 105),
        (0x08, "#DF", "exception", 0, True, None, 106),
    ]


def test_ist_without_tss_ss_folded_twice() -> None:
    assert [r[:6] for r in rows("lhv-ist-without-tss.amd64.log")] == [
        (0x20, "0x20", "hardware", None, True, None),
        (0x0C, "#SS", "exception", 0x0, True, None),
        (0x0C, "#SS", "exception", None, False, "#DF"),
        (0x08, "#DF", "exception", 0, True, None),
        (0x0C, "#SS", "exception", None, False, "triple fault"),
    ]


def test_a_hardware_irq_on_vector_8_is_one_delivered_row() -> None:
    assert rows("lhv-pic-unremapped.amd64.log") == [
        (0x08, "0x08", "hardware", None, True, None, 61),
    ]


def test_folded_rows_say_why_their_error_code_is_null() -> None:
    chain = build_chain(parse_int_log((INTLOG / "lhv-stack-overflow.amd64.log").read_text()))
    out = chain_to_json(chain)
    assert [r.get("error_code_note") for r in out] == [
        None,
        FOLDED_ERROR_CODE_NOTE,
        None,
        FOLDED_ERROR_CODE_NOTE,
    ]
    # A folded raise happened while the CPU delivered the row before: same CS:IP and SS:SP.
    assert (out[1]["rip"], out[1]["sp"]) == (out[0]["rip"], out[0]["sp"])
    assert (out[3]["rip"], out[3]["sp"]) == (out[2]["rip"], out[2]["sp"])


def test_a_check_exception_delivered_as_itself_is_not_folded() -> None:
    """``check_exception old: 0x1 new 0xd`` then ``v=0d``: a benign first exception (#DB)
    and a #GP delivered normally (SDM Table 6-5: no #DF) — one delivered row, no fold."""
    text = "\n".join(
        [
            "check_exception old: 0xffffffff new 0x1",
            "     0: v=01 e=0000 i=0 cpl=0 IP=0008:0000000000100abc pc=0000000000100abc "
            "SP=0010:0000000000107f00 env->regs[R_EAX]=0000000000000000",
            "check_exception old: 0x1 new 0xd",
            "     1: v=0d e=0018 i=0 cpl=0 IP=0008:0000000000100abc pc=0000000000100abc "
            "SP=0010:0000000000107f00 env->regs[R_EAX]=0000000000000000",
            "",
        ]
    )
    events = parse_int_log(text)
    assert [(e.vector, e.delivered) for e in events] == [(1, True), (13, True)]  # type: ignore[union-attr]


def test_a_hardware_row_names_its_device_from_the_vector_map() -> None:
    """Recorded state of timer-gate-missing amd64: master PIC at 0x20, LAPIC timer on 0x22.
    An interrupt on 0x22 is the LAPIC timer — 0x22 would be the master's IRQ2, the cascade,
    which is never delivered; one on 0x20 is IRQ0 of the master PIC."""
    snapshot = load_snapshot(INTLOG / "session" / "timer-gate-missing.amd64.json")
    events = [
        InterruptEvent(0x22, "hardware", None, 0x102427, cs=8, line=10),
        InterruptEvent(0x20, "hardware", None, 0x102427, cs=8, line=11),
        InterruptEvent(0x0D, "exception", 0x0, 0x102427, cs=8, check_old=-1, line=12),
    ]
    chain = build_chain(events, pic=snapshot.pic, lapic=snapshot.lapic)
    context, (irq0, gp) = chain.context, chain.steps
    assert context is not None and context.irq is None
    assert context.title == "hardware interrupt, LAPIC timer (lapic-lvt-timer)"
    assert (
        irq0.irq == ("master", 0) and irq0.title == "hardware interrupt, IRQ0 from the master PIC"
    )
    out = chain_to_json(chain)
    assert out[0]["origin"] == {
        "source": "pic-master",
        "line": 0,
        "irq": 0,
        "device": "PIT timer",
        "masked": False,
    }
    assert out[1]["origin"] is None  # an exception has no device
    assert gp.origin is None


def test_the_ioapic_pin_behind_vector_8_and_the_lapic_timer_before_it() -> None:
    """Fault-matrix case amd64-ioapic-pit-vector-08, as recorded (QEMU 7.2): the LAPIC
    timer on 0x22 delivered normally (the context), then the PIT through I/O APIC pin 2
    on vector 8 — both 8259s masked, so no PIC line is blamed."""
    matrix = INTLOG.parent / "matrix"
    snapshot = load_snapshot(matrix / "amd64-ioapic-pit-vector-08.json")
    events = parse_int_log((matrix / "amd64-ioapic-pit-vector-08.log").read_text())
    ev = evidence_from_snapshot(
        snapshot, events=events, int_log=True, stop=StopInfo("vector", vector=8)
    )
    report = make_report(ev)
    assert report.outcome == "hardware-interrupt-on-vector-8"
    data = report.to_json()
    (row,) = data["chain"]
    assert (row["vector"], row["source"], row["delivered"]) == (8, "hardware", True)
    assert row["origin"] == {
        "source": "ioapic",
        "line": 2,
        "irq": None,
        "device": None,
        "masked": False,
    }
    assert data["context"]["origin"]["source"] == "lapic-lvt-timer"
    assert report.chain.steps[0].title == "hardware interrupt, I/O APIC entry 2 (ioapic)"


@pytest.mark.parametrize(
    ("name", "raised", "line"),
    [("qemu10-gate-present.amd64.log", 0x0B, 218), ("qemu10-idt-limit.amd64.log", 0x0D, 217)],
)
def test_qemu10_logs_read_the_same_way(name: str, raised: int, line: int) -> None:
    """QEMU 10.0.2 (bookworm-backports) runs of the lhv-good amd64 firmware with
    ``fault=gate-present:0x20:0`` / ``fault=idt-limit:0x1ff``: the same line formats as 7.2,
    and IDT codes as vector*8+2 (e=0102 for IRQ0 on 0x20, no EXT) — read as vector 0x20,
    not as 7.2's vector*16+2. The #NP of the #DF is folded, as in 7.2."""
    chain = build_chain(parse_int_log((INTLOG / name).read_text()))
    assert rows(name) == [
        (0x20, "0x20", "hardware", None, True, None, line - 22),
        (raised, chain.steps[1].name, "exception", 0x102, True, None, line),
        (0x0B, "#NP", "exception", None, False, "#DF", line + 21),
        (0x08, "#DF", "exception", 0, True, None, line + 22),
    ]
    error = chain.steps[1].error
    assert error is not None and (error.table, error.index, error.quirk) == ("IDT", 0x20, None)
