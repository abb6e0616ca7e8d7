"""Rules that no firmware variant triggers, on real captures with constructed events.

The snapshots are real (recorded at the vector-8 handler of the firmware); the event
chains are built as dataclasses in the shapes QEMU 7.2 logs (see test_intlog.py), and the
machine state is changed with ``dataclasses.replace`` where a rule needs it.
"""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from lhvdbg.diagnose.chain import build_chain
from lhvdbg.diagnose.events import InterruptEvent
from lhvdbg.diagnose.evidence import Evidence, StopInfo, evidence_from_snapshot
from lhvdbg.diagnose.intlog import parse_int_log
from lhvdbg.diagnose.report import make_report
from lhvdbg.diagnose.rules import CAUSE_IDS, RULES, Cause, diagnose, rule, rules_table
from lhvdbg.diagnose.rules.pic_not_masked_with_apic import pic_not_masked_with_apic
from lhvdbg.diagnose.rules.spurious_irq import spurious_irq
from lhvdbg.diagnose.rules.tss_rsp0_invalid import tss_rsp0_invalid
from lhvdbg.state.snapshot import Snapshot, load_snapshot
from lhvdbg.x86.apic import lvt_timer_layout
from tests.firmware_facts import facts
from tests.unit.snapshot_edit import with_gate, with_tss, write
from tests.vocabulary import CAUSE_IDS as VOCABULARY_CAUSES
from tests.vocabulary import CHECK_IDS

AMD64 = facts("amd64")  # the recorded snapshots' firmware

ROOT = Path(__file__).resolve().parent.parent.parent
SESSION = ROOT / "tests" / "fixtures" / "intlog" / "session"
RULES_DIR = ROOT / "lhvdbg" / "diagnose" / "rules"
DOCS = ROOT / "docs" / "diagnosis.md"
TABLE_BEGIN = "<!-- rules table: generated from the registry (test_rules.py --update-golden) -->"
TABLE_END = "<!-- end of the rules table -->"
EXAMPLES_BEGIN = "<!-- examples: generated from firmware/fault-cases.toml (test_rules.py) -->"
EXAMPLES_END = "<!-- end of the examples -->"
CASES = ROOT / "firmware" / "fault-cases.toml"
RIP = 0x102426  # an instruction in kernel_main of the recorded amd64 firmware


def snap(name: str) -> Snapshot:
    return load_snapshot(SESSION / f"{name}.json")


def evidence(snapshot: Snapshot, events: list[InterruptEvent]) -> Evidence:
    return evidence_from_snapshot(
        snapshot, events=events, int_log=True, stop=StopInfo("vector", vector=8)
    )


def hw(vector: int, line: int = 10, cpl: int = 0) -> InterruptEvent:
    return InterruptEvent(vector, "hardware", None, RIP, cs=0x08, sp=0x10EFD0, cpl=cpl, line=line)


def exc(
    vector: int, code: int | None, *, old: int | None = -1, line: int = 11, cpl: int = 0, **kw: int
) -> InterruptEvent:
    return InterruptEvent(
        vector,
        "exception",
        code,
        RIP,
        cs=0x08,
        sp=0x10EFD0,
        cpl=cpl,
        check_old=old,
        line=line,
        **kw,
    )


def test_cause_ids_are_stable_and_each_rule_is_listed() -> None:
    """The ids are public (``--json``, the fault matrix): every registered id is one of the
    shared vocabulary, none of the first ten is lost or renamed, the fallback comes last,
    and every rule file is registered (one module per cause, named after it)."""
    assert set(CAUSE_IDS) <= VOCABULARY_CAUSES
    assert set(CAUSE_IDS) >= {
        "pic-not-remapped",
        "spurious-irq",
        "pic-not-masked-with-apic",
        "ist-without-tss",
        "tss-rsp0-invalid",
        "ring3-int-gate-dpl",
        "iret-bad-selector",
        "stack-overflow",
        "gate-not-present",
        "unexplained-chain",
    }
    assert CAUSE_IDS[-1] == "unexplained-chain" and len(set(CAUSE_IDS)) == len(CAUSE_IDS)
    assert [s.id for s in RULES] == list(CAUSE_IDS[:-1])  # the fallback is not in RULES
    assert [s.order for s in RULES] == sorted(s.order for s in RULES)
    modules = sorted(
        p.stem.replace("_", "-") for p in RULES_DIR.glob("*.py") if not p.name.startswith("_")
    )
    assert modules == sorted(CAUSE_IDS)  # one module per cause, named after it
    for spec in RULES:
        assert spec.function.__module__.endswith("." + spec.id.replace("-", "_"))
        assert spec.sdm.startswith(("Vol. 3A", "Vol. 2A")), spec.id
        assert set(spec.fires_on) <= CHECK_IDS, spec.id
        assert spec.description, spec.id


def test_every_cause_a_rule_returns_carries_its_registered_id() -> None:
    fired: dict[str, list[Cause]] = {}
    for path in sorted(SESSION.glob("*.json")):
        if path.name == "stops.json":
            continue
        base = load_snapshot(path)
        events = parse_int_log(path.with_suffix(".log").read_text())
        ev = evidence(base, events)
        chain = build_chain(events, tables=ev.tables, pic=base.pic)
        for spec in RULES:
            cause = spec(chain, ev)
            if cause is not None:
                fired.setdefault(spec.id, []).append(cause)
    assert set(fired) >= {
        "pic-not-remapped",
        "ist-without-tss",
        "iret-bad-selector",
        "stack-overflow",
        "gate-not-present",
    }
    for cause_id, causes in fired.items():
        assert {c.id for c in causes} == {cause_id}
        assert all(set(c.fix_fields) and c.check in CHECK_IDS | {None} for c in causes)


def test_registering_a_cause_twice_or_on_a_taken_order_fails() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        rule("stack-overflow", order=5000, sdm="Vol. 3A §6.15")(lambda chain, ev: None)
    with pytest.raises(ValueError, match="order 10 already taken by 'pic-not-remapped'"):
        rule("a-new-cause", order=10, sdm="Vol. 3A §6.15")(lambda chain, ev: None)


def examples_table() -> str:
    """Per registered cause, the fault-matrix cases that produce it (``firmware/
    fault-cases.toml``): how to run one, the check that fails first, the field the fix
    must name."""
    cases = tomllib.loads(CASES.read_text())["case"]
    lines = [
        "| cause | a case (arch) | `break-on-df --variant good --arch ARCH --append ...` "
        "| first failing check | fix field | cases |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for cause_id in CAUSE_IDS:
        mine = [c for c in cases if c["cause"] == cause_id]
        if not mine:
            continue
        first = mine[0]
        lines.append(
            f"| `{cause_id}` | `{first['name']}` ({first['arch']}) | `{first['append']}` "
            f"| `{first['check']}` | `{first['fix_field']}` | {len(mine)} |"
        )
    return "\n".join(lines) + "\n"


def _generated(text: str, begin: str, end: str, table: str, update: bool) -> tuple[str, str]:
    """(the table now between ``begin`` and ``end`` in ``text``, the text with ``table``
    written there when ``update``)."""
    head, rest = text.split(begin + "\n", 1)
    current, tail = rest.split(end, 1)
    return (table if update else current), head + begin + "\n" + table + end + tail


def test_the_docs_examples_table_is_the_fault_case_table(request: pytest.FixtureRequest) -> None:
    """docs/diagnosis.md's per-cause examples come from firmware/fault-cases.toml (and the
    registry's order); ``--update-golden`` rewrites them."""
    update = bool(request.config.getoption("--update-golden"))
    table, text = _generated(
        DOCS.read_text(), EXAMPLES_BEGIN, EXAMPLES_END, examples_table(), update
    )
    if update:
        DOCS.write_text(text)
    assert table == examples_table(), "docs/diagnosis.md examples differ; --update-golden"
    cases = tomllib.loads(CASES.read_text())["case"]
    assert {c["cause"] for c in cases} <= set(CAUSE_IDS)  # every case names a registered cause


def matrix_cases() -> dict[str, list[str]]:
    """Cause id -> the fault-matrix cases expecting it, in file order."""
    by_cause: dict[str, list[str]] = {}
    for case in tomllib.loads(CASES.read_text())["case"]:
        by_cause.setdefault(case["cause"], []).append(case["name"])
    return by_cause


def test_the_docs_rules_table_is_the_registry(request: pytest.FixtureRequest) -> None:
    """docs/diagnosis.md's table between the markers is generated: ``--update-golden``
    rewrites it from the registry and the fault matrix's cases."""
    text = DOCS.read_text()
    head, rest = text.split(TABLE_BEGIN + "\n", 1)
    table, tail = rest.split(TABLE_END, 1)
    fresh = rules_table(matrix_cases())
    if request.config.getoption("--update-golden"):
        DOCS.write_text(head + TABLE_BEGIN + "\n" + fresh + TABLE_END + tail)
        table = fresh
    assert table == fresh, "docs/diagnosis.md rules table differs; --update-golden"
    row = next(line for line in table.splitlines() if "| `tss-rsp0-invalid` |" in line)
    assert row.endswith("| fault matrix, 4 cases (`amd64-user-rsp0-noncanonical`, "
                        "`amd64-user-rsp0-noncanonical-triple`, and 2 more) |")  # fmt: skip
    for spec in RULES:
        assert f"| `{spec.id}` |" in table


def test_spurious_irq7_with_isr_clear_and_no_handler() -> None:
    base = snap("timer-gate-missing.amd64")
    assert base.pic is not None and base.pic.master.irq_base == AMD64.pic_bases[0]
    pic = replace(base.pic, master=replace(base.pic.master, isr=0x00))
    events = [hw(0x27, 10), exc(11, 0x27 * 16 + 2, line=11), exc(8, 0, old=11, line=12)]
    ev = evidence(replace(base, pic=pic), events)
    report = make_report(ev)
    assert report.diagnosis[0].id == "spurious-irq"
    assert "spurious IRQ7" in report.diagnosis[0].summary
    assert "OCW3" in report.diagnosis[0].fix
    # A real IRQ7 (ISR bit 7 set) is not spurious.
    pic7 = replace(base.pic, master=replace(base.pic.master, isr=0x80))
    chain = build_chain(events, tables=ev.tables, pic=pic7)
    assert spurious_irq(chain, evidence(replace(base, pic=pic7), events)) is None


def _without_gates(snapshot: Snapshot, vectors: range) -> Snapshot:
    """``snapshot`` with IDT[v] not present for each v."""
    for v in vectors:
        snapshot = with_gate(snapshot, v, present=0)
    return snapshot


def test_pic_not_masked_with_apic_when_the_idt_has_no_pic_handlers() -> None:
    """An APIC-only kernel: PIC remapped to 0x20/0x28, LAPIC timer on 0x22, and no gate
    for any PIC IRQ vector. IRQ0 still arrives (on 0x20): the PIC was left unmasked."""
    base = _without_gates(snap("timer-gate-missing.amd64"), range(0x20, 0x30))
    assert base.pic is not None and base.pic.master.irq_base == AMD64.pic_bases[0]
    assert base.lapic is not None
    assert lvt_timer_layout().decode(base.lapic.lvt_timer).vector == AMD64.vectors["LAPIC_TIMER"]
    events = [hw(0x20), exc(11, 0x202), exc(8, 0, old=11, line=12)]
    ev = evidence(base, events)
    chain = build_chain(events, tables=ev.tables, pic=base.pic)
    cause = pic_not_masked_with_apic(chain, ev)
    assert cause is not None and cause.confidence == "medium"
    assert "IRQ0 (PIT timer) arrived on vector 0x20" in cause.summary
    text = "\n".join(cause.evidence)
    assert "LVT timer 0x20022 unmasked on vector 0x22" in text
    assert (
        "no present gate for any vector the PIC delivers IRQs on (0x20-0x21, 0x23-0x26, "
        "0x28-0x2e; the APIC's own vectors left out)"
    ) in text
    assert "remapped the PIC (bases 0x20/0x28) but put no gates there" in text
    assert "master IMR=0xf8, slave IMR=0xff" in text
    assert "0xff to ports 0x21 and 0xA1" in cause.fix
    # One PIC handler (IRQ1, keyboard) says the kernel takes PIC interrupts on purpose.
    keyboard = _without_gates(snap("timer-gate-missing.amd64"), range(0x20, 0x21))
    assert pic_not_masked_with_apic(chain, evidence(keyboard, events)) is None
    # A masked LAPIC timer, or a fully masked PIC: no cause.
    masked_timer = replace(
        base, lapic=replace(base.lapic, lvt_timer=base.lapic.lvt_timer | 1 << 16)
    )
    assert pic_not_masked_with_apic(chain, evidence(masked_timer, events)) is None
    closed = replace(base.pic, master=replace(base.pic.master, imr=0xFF))
    assert pic_not_masked_with_apic(chain, evidence(replace(base, pic=closed), events)) is None


def test_pic_not_masked_with_apic_not_on_lhv_using_pit_and_lapic_timer() -> None:
    """LHV uses the PIT (on the PIC) and the LAPIC timer together on purpose: the recorded
    pic-unremapped evidence (LAPIC timer on, PIC unmasked, IRQ0 on vector 8) has handlers
    for the PIC's vectors, so the rule stays silent; only the real cause remains."""
    base = snap("pic-unremapped.amd64")
    assert base.lapic is not None and base.lapic.enabled and not base.lapic.lvt_timer >> 16 & 1
    events = [hw(8)]
    ev = evidence(base, events)
    chain = build_chain(events, tables=ev.tables, pic=base.pic)
    assert pic_not_masked_with_apic(chain, ev) is None
    assert [c.id for c in diagnose(chain, ev)] == ["pic-not-remapped"]
    # The same with no gate at the slave's vectors 0x70-0x76 (the master's sit on
    # exception vectors): an APIC-only kernel that left the PIC as the BIOS set it.
    bare = _without_gates(base, range(0x70, 0x78))
    cause = pic_not_masked_with_apic(chain, evidence(bare, events))
    assert cause is not None and "(0x70-0x76;" in "\n".join(cause.evidence)
    assert not any("remapped the PIC" in e for e in cause.evidence)


def test_pic_not_masked_with_apic_never_on_the_recorded_firmware_variants() -> None:
    for path in sorted(SESSION.glob("*.json")):
        if path.name == "stops.json":
            continue
        base = load_snapshot(path)
        events = parse_int_log(path.with_suffix(".log").read_text())
        ev = evidence(base, events)
        chain = build_chain(events, tables=ev.tables, pic=base.pic)
        assert pic_not_masked_with_apic(chain, ev) is None, path.name


def test_ring3_int_through_a_dpl0_gate() -> None:
    base = snap("timer-gate-missing.i386")
    soft = InterruptEvent(0x80, "software", None, 0x400010, cs=0x23, sp=0x7FF0, cpl=3, line=10)
    gp = InterruptEvent(
        13, "exception", 0x80 * 8 + 2, 0x400010, cs=0x23, sp=0x7FF0, cpl=3, check_old=-1, line=11
    )
    report = make_report(evidence(base, [soft, gp]))
    cause = report.diagnosis[0]
    assert cause.id == "ring3-int-gate-dpl"
    assert cause.summary.startswith("IDT[0x80] has DPL 0 < CPL 3")
    assert (cause.check, cause.fix_fields) == ("gate-dpl", ("idt[0x80].dpl",))
    assert "0xEE" in cause.fix


def test_interrupt_from_ring3_with_rsp0_zero() -> None:
    base = with_tss(snap("timer-gate-missing.amd64"), rsp0=0)
    irq = hw(0x21, 10, cpl=3)
    pf = exc(14, 0x2, line=11, cpl=3, cr2=0xFFFFFFFFFFFFFFF8)
    ev = evidence(base, [irq, pf])
    report = make_report(ev)
    cause = report.diagnosis[0]
    assert cause.id == "tss-rsp0-invalid"
    # RSP0 = 0: the frame's first store wraps to 0xfffffffffffffff8; the capture has no
    # page tables for it, QEMU's log shows the #PF there.
    assert (cause.check, cause.fix_fields) == (
        "stack-push",
        ("tss.rsp0", "page[0xfffffffffffff000]"),
    )
    assert "0xfffffffffffffff8" in cause.summary and "QEMU's log" in cause.summary
    # The same fault at CPL 0 is not a stack-switch problem.
    chain = build_chain([hw(0x21, 10), exc(14, 0x2, line=11, cr2=8)], tables=ev.tables)
    assert tss_rsp0_invalid(chain, ev) is None


def test_unexplained_chain_lists_every_exception_in_order() -> None:
    base = snap("pic-unremapped.amd64")  # every gate present: no gate rule fires
    events = [
        InterruptEvent(6, "exception", None, 0x101000, cs=8, sp=0x10EF00, check_old=-1, line=10),
        InterruptEvent(13, "exception", 0x18, 0x101000, cs=8, sp=0x10EF00, check_old=6, line=11),
    ]
    report = make_report(evidence(base, events))
    assert [c.id for c in report.diagnosis] == ["unexplained-chain"]
    cause = report.diagnosis[0]
    assert cause.confidence == "low"
    lines = [e for e in cause.evidence if e[:2] in ("1.", "2.")]
    assert lines[0].startswith("1. #UD (Invalid Opcode), no error code")
    assert lines[1].startswith("2. #GP (General Protection), error code 0x18: GDT selector 0x18")
    assert "GDT[0x18]: data, read/write" in lines[1]
    assert report.outcome == "no-fault"


def test_kvm_chain_comes_from_the_frame_and_pic() -> None:
    base = snap("pic-unremapped.amd64")
    kvm = replace(base, provenance=replace(base.provenance, accel="kvm"))
    ev = evidence_from_snapshot(kvm, stop=StopInfo("vector", vector=8))
    assert ev.int_log is False and ev.frame is not None
    report = make_report(ev)
    assert report.outcome == "hardware-interrupt-on-vector-8"
    assert report.diagnosis[0].id == "pic-not-remapped"
    assert report.diagnosis[0].confidence == "high"
    assert any("no interrupt log" in e for e in report.diagnosis[0].evidence)
    assert any(d.startswith("KVM: no interrupt log") for d in report.disagreements)


def test_disagreement_when_the_stack_holds_an_error_code_but_the_log_says_irq() -> None:
    base = snap("pic-unremapped.amd64")
    stack = base.region("stack")
    assert stack is not None
    sp = base.cpu.sp
    off = sp - stack.address
    words = stack.data[off : off + 32]
    # Push an error code of 0 in front of the real frame (what a real #DF would leave).
    pushed = write(base, sp - 8, bytes(8) + words)
    moved = replace(pushed, cpu=replace(base.cpu, gprs={**base.cpu.gprs, "rsp": sp - 8}))
    ev = evidence(moved, [hw(8)])
    assert ev.frame is not None and ev.frame.kind == "error-code"
    report = make_report(ev)
    assert any("the log says vector 8 was a hardware interrupt" in d for d in report.disagreements)


def test_no_events_no_stop_no_causes() -> None:
    base = snap("pic-unremapped.amd64")
    ev = evidence_from_snapshot(base, stop=StopInfo("timeout"), int_log=True)
    assert diagnose(build_chain([]), ev) == []
    assert make_report(ev).outcome == "no-fault"


def test_probe_with_empty_idt_log_only_ranks_the_pic_before_the_missing_gate() -> None:
    from lhvdbg.diagnose.intlog import parse_int_log

    log = (SESSION.parent / "probe-null-idt.i386.log").read_text()
    ev = Evidence(
        arch="i386",
        accel="tcg",
        stop=StopInfo("exited"),
        events=tuple(parse_int_log(log)),
        int_log=True,
    )
    report = make_report(ev)
    assert report.outcome == "triple-fault"
    assert [c.id for c in report.diagnosis] == ["pic-not-remapped", "gate-not-present"]
    assert [c.confidence for c in report.diagnosis] == ["high", "high"]
    assert "IDT vector 0x08" in report.diagnosis[1].evidence[0]
    assert any("only the 8259s deliver vectors below 16" in e for e in report.diagnosis[0].evidence)
