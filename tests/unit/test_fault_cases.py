"""The fault matrix's case table and its recorded runs (no QEMU).

``firmware/fault-cases.toml`` is checked against the shared vocabulary of issue 9
(``/work/team/DELIVERY-MODEL.md``) and the firmware's injection syntax
(``firmware/include/lhv/fault.h``); each case's recorded QEMU log
(``tests/fixtures/matrix/<case>.log``, ``record.py``) is read by the bench's own log
reader and must show what the case injected: the first abnormal event, the exception
the failing check raises, and the escalation the case expects.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest

from tests.firmware_facts import ARCHES, facts
from tests.matrix import BY_NAME, CASES, MATRIX, ROOT, STOPS, fm, recorded_evidence
from tests.vocabulary import (
    CAUSE_IDS,
    CHECK_IDS,
    DELIVERY_CHECKS,
    IRET_CHECKS,
    OUTCOMES,
)

FIX_FIELD = re.compile(
    r"^(idtr\.limit|idt\[0x[0-9a-f]{2}\]\.(type|present|dpl|selector|offset|ist)"
    r"|gdt\[0x[0-9a-f]{2}\]|tr|tr\.limit|tss\.ist[1-7]|tss\.rsp0|tss\.esp0|tss\.ss0"
    r"|page\[0x[0-9a-f]+\]|pic\.(master|slave)\.base|lapic\.lvt_[a-z0-9]+\.vector"
    r"|ioapic\.redir\[\d+\]\.vector|iret_frame\.(cs|ss|rip)|stack)$"
)
HARDWARE_SOURCES = {"pic-master", "pic-slave", "lapic-lvt-timer", "ioapic"}
# Checks QEMU 7.2 cannot show: an IRET runs at CPL 0 in the firmware, so a CS RPL below
# the CPL cannot be built; no spurious IRQ can be provoked on purpose; and QEMU 7.2 does
# not check a 32-bit gate's offset against the CS limit (target-offset is shown on amd64).
NOT_EXHIBITED = {"iret-cs-rpl", "spurious-irq"}

# The firmware's injection words (firmware/include/lhv/fault.h).
_NUM = r"(0x[0-9a-fA-F]+|\d+)"
_WORDS = [
    rf"fault=(idt-limit|tss-limit|ss0|iret-cs|iret-ss|iret-rip|user-int):{_NUM}",
    rf"fault=(rsp0|esp0):({_NUM}|guard)",
    rf"fault=(gate-type|gate-sel|gate-present|gate-dpl|gate-offset|ist):{_NUM}:{_NUM}",
    rf"fault=ist-ptr:[1-7]:({_NUM}|guard)",
    rf"exc={_NUM}",
    r"df-ist=[0-7]",
    rf"pic-base={_NUM}(:{_NUM})?",
    rf"(lapic-timer-vector|ioapic)={_NUM}",
    r"df-task|rtc|user|no-ltr|overflow",
]
INJECTION_WORD = re.compile("^(" + "|".join(_WORDS) + ")$")

# The exception the failing check raises (Intel SDM Vol. 3A ch. 6, Vol. 2A INT n / IRET),
# where QEMU 7.2 raises another one, that one (the recorded logs are QEMU's).
FIRST_RAISE = {
    **dict.fromkeys(
        [
            "idt-limit",
            "gate-type",
            "gate-dpl",
            "task-gate-tss",
            "cs-null",
            "cs-limit",
            "cs-type",
            "cs-dpl",
            "cs-long",
            "target-offset",
        ],
        13,
    ),
    "gate-present": 11,
    "cs-present": 11,
    "tss-limit": 10,
    "ss0-null": 10,
    "ss0-invalid": 10,
    "ss0-present": 10,  # SDM: #SS(SS0); QEMU 7.2 raises #TS(SS0)
    "stack-pointer": 12,
    "stack-push": 14,
    **{c: 13 for c in IRET_CHECKS},
    "iret-cs-present": 11,
    "iret-ss-present": 11,  # SDM: #SS(SS); QEMU 7.2 raises #NP(SS)
}


def words(case: Any) -> list[str]:
    return str(case.append).split()


def injected(case: Any, kind: str) -> list[int]:
    """The numbers of ``fault=KIND:...`` words (for two-part kinds, INDEX then VALUE)."""
    out: list[int] = []
    for w in words(case):
        if w.startswith(f"fault={kind}:"):
            out += [int(x, 0) for x in w.split(":")[1:] if x != "guard"]
    return out


def gate_vectors(case: Any) -> set[int]:
    """The vectors whose gates a ``fault=gate-*:VEC:...`` word changes."""
    return {int(w.split(":")[1], 0) for w in words(case) if w.startswith("fault=gate-")}


# ---- the table ---------------------------------------------------------------------------


def test_enough_distinct_cases_on_both_arches() -> None:
    assert len(CASES) >= 40
    assert len(BY_NAME) == len(CASES)
    assert len({(c.arch, c.append) for c in CASES}) == len(CASES)
    arches = Counter(c.arch for c in CASES)
    assert set(arches) == {"amd64", "i386"} and min(arches.values()) >= 20


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_case_uses_the_vocabulary(case: Any) -> None:
    c = case
    assert c.name.startswith(f"{c.arch}-")
    assert c.outcome in OUTCOMES
    assert c.check in CHECK_IDS
    assert c.cause in CAUSE_IDS
    assert FIX_FIELD.match(c.fix_field), c.fix_field
    assert c.note
    bad = [w for w in words(c) if not INJECTION_WORD.match(w)]
    assert not bad


def test_every_check_the_emulator_can_show_is_covered() -> None:
    covered = {c.check for c in CASES}
    assert CHECK_IDS - covered == NOT_EXHIBITED


def test_every_hardware_source_and_escalation_is_covered() -> None:
    hw = [c for c in CASES if c.check == "hardware-on-exception-vector"]
    assert {c.source for c in hw} == HARDWARE_SOURCES
    for arch in ("amd64", "i386"):
        mine = [c for c in CASES if c.arch == arch]
        assert {c.outcome for c in mine} >= {
            "hardware-interrupt-on-vector-8",
            "double-fault",
            "triple-fault",
        }
    own_stack = [c for c in CASES if {"df-ist=2", "df-task"} & set(words(c))]
    assert {c.arch for c in own_stack} == {"amd64", "i386"}
    # The same fault with the #DF gate on its own stack (a #DF) and without (a triple fault).
    for name in ("amd64-stack-overflow", "i386-stack-overflow", "amd64-user-rsp0-noncanonical"):
        own = next(c for c in own_stack if c.name.startswith(name))
        plain = BY_NAME[name] if own.name != name else BY_NAME[f"{name}-triple"]
        assert (own.outcome, plain.outcome) == ("double-fault", "triple-fault")


def test_fix_field_names_what_was_injected() -> None:
    for c in CASES:
        if c.check.startswith("cs-"):
            (vector,) = gate_vectors(c)
            assert c.fix_field == f"idt[{vector:#04x}].selector"
        if c.check.startswith("iret-"):
            part = c.check.split("-")[1]
            assert c.fix_field == f"iret_frame.{part}"
            assert injected(c, f"iret-{part}")
        if c.cause == "tss-limit-too-short":
            assert injected(c, "tss-limit") and c.fix_field == "tr.limit"
        if c.cause == "tss-ss0-invalid":
            assert injected(c, "ss0") and c.fix_field == "tss.ss0"


# ---- the recorded runs -------------------------------------------------------------------


def truth(case: Any) -> object:
    return fm.read_log((MATRIX / f"{case.name}.log").read_text())


def test_every_case_is_recorded_with_its_command_line() -> None:
    assert set(STOPS) == set(BY_NAME)
    for name, stop in STOPS.items():
        assert (stop["arch"], stop["append"]) == (BY_NAME[name].arch, BY_NAME[name].append)
        assert (MATRIX / f"{name}.log").stat().st_size < 20_000  # the kernel's part only
        if stop["snapshot"]:
            assert (MATRIX / f"{name}.json").is_file()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_recorded_log_shows_the_injected_failure(case: Any) -> None:
    c = case
    t = truth(c)
    assert t.outcome == c.outcome
    chain = fm.truth_chain(c, t)
    assert chain, "no chain in the log"
    if c.check == "hardware-on-exception-vector":
        (row,) = chain
        assert (row.vector, row.source, row.error_code) == (8, "hardware", None)
        return
    # The event whose delivery failed leads, on the vector the case broke.
    if c.check in DELIVERY_CHECKS and "overflow" not in words(c):
        lead, first = chain[0], chain[1]
        assert lead.source in ("hardware", "software")
        broken = gate_vectors(c)
        if c.check == "gate-dpl":
            broken = set(injected(c, "user-int"))
        if broken:
            assert lead.vector in broken
        else:  # stacks, the IDT limit: the PIT's IRQ0
            assert lead.vector == 0x20
    else:
        first = chain[0]
    assert first.raised_over == fm.NO_RAISE and first.delivered
    assert first.vector == FIRST_RAISE[c.check]
    # Selector checks push the selector (RPL bits clear) the case injected.
    if c.check in ("cs-limit", "cs-type", "cs-dpl", "cs-long", "cs-present"):
        assert first.error_code == injected(c, "gate-sel")[1] & 0xFFFC
    if c.check.startswith("iret-") and c.check not in ("iret-rip", "iret-ss-null", "iret-cs-null"):
        part = c.check.split("-")[1]
        assert first.error_code == injected(c, f"iret-{part}")[0] & 0xFFFC
    if c.check in ("cs-null", "iret-cs-null", "iret-ss-null", "iret-rip", "target-offset"):
        assert first.error_code == 0
    # The escalation: a folded raise turned into the #DF (error code 0) ...
    df = next(i for i, r in enumerate(chain) if r.vector == 8)
    assert not chain[df - 1].delivered
    assert chain[df].error_code == 0 and chain[df].delivered
    # ... and for a triple fault, the raise while delivering the #DF ends the chain.
    if c.outcome == "triple-fault":
        assert chain[-1].vector != 8 and not chain[-1].delivered
        assert chain[-1].raised_over == 8
    else:
        assert chain[-1] is chain[df]


def test_reader_folds_raises_and_stops_like_break_on_df() -> None:
    log = (
        "     0: v=30 e=0000 i=1 cpl=0 IP=0008:00000000001000aa pc=1 SP=0018:1\n"
        "Servicing hardware INT=0x20\n"
        "     1: v=20 e=0000 i=0 cpl=0 IP=0008:0000000000100100 pc=1 SP=0018:1\n"
        "check_exception old: 0xffffffff new 0xd\n"
        "     2: v=0d e=0202 i=0 cpl=0 IP=0008:0000000000100100 pc=1 SP=0018:1\n"
        "check_exception old: 0xd new 0xb\n"
        "     3: v=08 e=0000 i=0 cpl=0 IP=0008:0000000000100100 pc=1 SP=0018:1\n"
        "check_exception old: 0x8 new 0xd\n"
        "Triple fault\n"
    )
    t = fm.read_log(log)
    assert t.outcome == "triple-fault"
    rows = [(r.vector, r.delivered, r.source, r.error_code) for r in t.chain()]
    assert rows == [
        (0x20, True, "hardware", None),
        (0x0D, True, "exception", 0x202),
        (0x0B, False, "exception", None),
        (8, True, "exception", 0),
        (0x0D, False, "exception", None),
    ]
    # Delivered #DF with nothing after it: break-on-df stops there, later events are not read.
    t = fm.read_log(log.replace("check_exception old: 0x8 new 0xd\nTriple fault\n", "") + log)
    assert t.outcome == "double-fault" and len(t.chain()) == 4


# ---- the recorded evidence loads for the diagnosis ----------------------------------------


@pytest.mark.parametrize(
    "case", [c for c in CASES if STOPS[c.name]["snapshot"]], ids=lambda c: c.name
)
def test_recorded_evidence_gives_the_outcome(case: Any) -> None:
    from lhvdbg.diagnose.report import make_report

    report = make_report(recorded_evidence(case.name))
    assert report.outcome == case.outcome


# ---- the firmware's numbers in its DWARF --------------------------------------------------


@pytest.mark.parametrize("arch", ARCHES)
def test_firmware_declares_the_fault_kinds_and_extra_selectors_in_dwarf(arch: str) -> None:
    """The kinds the cases inject and the fault-mode GDT slots right after the static
    table, as the firmware's DWARF declares them (values in tests/unit/test_firmware_facts)."""
    got = facts(arch)
    assert {"IDT_LIMIT", "IRET_SS", "USER_INT", "GATE_IST", "RSP0"} <= set(got.fault_kinds)
    static = max(got.selectors[n] for n in ("USER_CS", "USER_DS")) & ~7
    assert static < got.selectors["NP_CODE"] < got.selectors["NP_DATA"]


def test_docs_list_every_case_with_its_command_line() -> None:
    doc = (ROOT / "docs" / "fault-matrix.md").read_text()
    missing = [c.name for c in CASES if f"| `{c.name}` | `{c.append}` |" not in doc]
    assert not missing


def _report_rows(case: Any) -> list[dict[str, Any]]:
    return [
        {
            "vector": r.vector,
            "error_code": r.error_code,
            "delivered": r.delivered,
            "source": r.source,
        }
        for r in fm.truth_chain(case, truth(case))
    ]


def test_bench_judges_a_right_report_right_and_tolerates_missing_fields() -> None:
    case = BY_NAME["amd64-idt-limit-short"]
    log = (MATRIX / f"{case.name}.log").read_text()
    right = {
        "outcome": "double-fault",
        "chain": _report_rows(case),
        "diagnosis": [{"id": case.cause, "check": case.check, "fix_fields": [case.fix_field]}],
    }
    result = fm.judge(case, log, right)
    assert result.right and result.problems == {}
    # The chain without `delivered`, a cause without check/fix_fields: wrong, not a crash.
    old = {
        "outcome": "double-fault",
        "chain": [{k: v for k, v in r.items() if k != "delivered"} for r in right["chain"]],
        "diagnosis": [{"id": case.cause}],
    }
    result = fm.judge(case, log, old)
    assert result.parts == {"outcome": True, "chain": False, "cause": False, "fix": False}
    # A folded row dropped (the bug issue 9 starts from) is a wrong chain.
    dropped = dict(right, chain=[r for r in right["chain"] if r["delivered"]])
    assert "chain" in fm.judge(case, log, dropped).problems
    # lhvdbg failing is every part wrong, with its message kept.
    failed = fm.judge(case, log, "exit 2: boom")
    assert not any(failed.parts.values()) and failed.error == "exit 2: boom"


@pytest.mark.parametrize(
    ("name", "limit"),
    [("amd64-idt-limit-short", 0x4F), ("i386-idt-limit-short", 0x4F)],
)
def test_fault_mode_gdtr_covers_the_extra_descriptors(name: str, limit: int) -> None:
    """In fault mode GDTR also covers gdt_extra (amd64 2, i386 4 extra descriptors); the
    compile-time variants keep the GDT limit of their 8 / 6 entries."""
    gdtr = re.compile(r"^GDT=\s+[0-9a-f]+ ([0-9a-f]{8})$", re.M)
    faulty = {int(x, 16) for x in gdtr.findall((MATRIX / f"{name}.log").read_text())}
    assert faulty == {limit}
    arch = BY_NAME[name].arch
    plain = ROOT / "tests" / "fixtures" / "intlog" / f"lhv-good.{arch}.log"
    kernel_dumps = {int(x, 16) for x in gdtr.findall(plain.read_text())}
    assert (8 if arch == "amd64" else 6) * 8 - 1 in kernel_dumps
    assert limit not in kernel_dumps
