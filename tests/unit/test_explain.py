"""The delivery model explains the chains recorded from real QEMU runs of every variant:
the first failing check, what it raises, and agreement with QEMU's own log.

The expected values come from what each firmware variant injects (firmware/variants/*.h),
not from lhvdbg's output: pic-unremapped leaves the master base at 0x08; timer-gate-missing
clears IDT[0x20].P and the #NP gate; iret-bad-ss returns through SS=0x08 (amd64) or
CS=0x10 (i386); ist-without-tss uses IST1 with TR never loaded; stack-overflow recurses
into the guard page.
"""

from __future__ import annotations

import pytest

from lhvdbg.diagnose.chain import build_chain
from lhvdbg.diagnose.explain import explain, log_rows
from tests.unit.test_diagnose_recorded import recorded

CASES = [
    # variant, arch, role, check, raised vector, fix fields, agreement of the first account
    (
        "pic-unremapped",
        "amd64",
        "event",
        "hardware-on-exception-vector",
        None,
        ("pic.master.base",),
        "confirmed",
    ),
    (
        "pic-unremapped",
        "i386",
        "event",
        "hardware-on-exception-vector",
        None,
        ("pic.master.base",),
        "confirmed",
    ),
    (
        "timer-gate-missing",
        "amd64",
        "delivery",
        "gate-present",
        11,
        ("idt[0x20].present",),
        "quirk",
    ),
    ("timer-gate-missing", "i386", "delivery", "gate-present", 11, ("idt[0x20].present",), "quirk"),
    ("iret-bad-ss", "amd64", "origin", "iret-ss-type", 13, ("iret_frame.ss",), "confirmed"),
    ("iret-bad-ss", "i386", "origin", "iret-cs-type", 13, ("iret_frame.cs",), "confirmed"),
    ("ist-without-tss", "amd64", "delivery", "stack-pointer", 12, ("tr",), "quirk"),
    (
        "stack-overflow",
        "amd64",
        "origin",
        "stack-push",
        14,
        ("stack", "page[0x10a000]"),
        "confirmed",
    ),
]


def _explained(variant: str, arch: str):  # type: ignore[no-untyped-def]
    ev = recorded(variant, arch)
    pic = ev.snapshot.pic if ev.snapshot is not None else None
    chain = build_chain(ev.events, tables=ev.tables, symbols=ev.symbols, pic=pic)
    return chain, explain(chain, ev)


@pytest.mark.parametrize(("variant", "arch", "role", "check", "vector", "fix", "agreement"), CASES)
def test_first_failing_check_of_each_recorded_variant(
    variant: str,
    arch: str,
    role: str,
    check: str,
    vector: int | None,
    fix: tuple[str, ...],
    agreement: str,
) -> None:
    _, x = _explained(variant, arch)
    assert x.first is not None
    assert (x.first.role, x.first.check.id) == (role, check)
    raised = x.first.check.raises
    assert (raised.vector if raised is not None else None) == vector
    assert x.first.check.fix_fields == fix
    assert x.accounts[0].agreement == agreement


def test_timer_gate_missing_is_followed_to_the_df_as_qemu_logged_it() -> None:
    chain, x = _explained("timer-gate-missing", "amd64")
    assert [(r.vector, r.delivered) for r in log_rows(chain)] == [
        (0x20, True),
        (0x0B, True),
        (0x0B, False),  # 'check_exception old: 0xb new 0xb': folded into the #DF
        (0x08, True),
    ]
    deliveries = x.accounts[0].deliveries
    assert [d.event.vector for d in deliveries] == [0x20, 0x0B, 0x08]
    assert [d.failed.id if d.failed else None for d in deliveries] == [
        "gate-present",
        "gate-present",
        None,
    ]
    # The SDM's code for the #NP is 0x20*8 + IDT + EXT; QEMU 7.2 logged vector*16+2.
    assert deliveries[0].raised is not None and deliveries[0].raised.error_code == 0x103
    assert any("vector×16+2" in n for n in x.accounts[0].notes)


def test_ist_without_tss_reads_ist1_from_the_real_mode_ivt_and_shuts_down() -> None:
    _, x = _explained("ist-without-tss", "amd64")
    account = x.accounts[0]
    assert account.triple_fault
    assert [d.event.vector for d in account.deliveries] == [0x20, 0x0C, 0x08]
    assert all(d.failed and d.failed.id == "stack-pointer" for d in account.deliveries)
    assert "real-mode IVT" in account.deliveries[0].failed.text  # type: ignore[union-attr]


def test_iret_origin_is_the_first_failure_and_the_missing_gp_gate_the_second() -> None:
    _, x = _explained("iret-bad-ss", "amd64")
    assert [(f.role, f.check.id) for f in x.failures] == [
        ("origin", "iret-ss-type"),
        ("delivery", "gate-present"),
    ]
    assert x.failures[1].check.fix_fields == ("idt[0x0d].present",)


def test_stack_overflow_pushes_fail_on_the_same_dead_stack_until_shutdown() -> None:
    _, x = _explained("stack-overflow", "i386")
    account = x.accounts[0]
    assert account.triple_fault and account.agreement == "confirmed"
    assert [d.failed.id for d in account.deliveries if d.failed] == ["stack-push", "stack-push"]


def test_without_a_log_the_model_infers_which_device_interrupt_failed() -> None:
    """KVM gives no interrupt log: stopped at the #DF handler with an error code of 0, the
    model tries the device vectors of the captured PIC/LAPIC and names the one whose
    delivery fails (timer-gate-missing: IRQ0 on 0x20 has no present gate), and says the
    chain was inferred."""
    from dataclasses import replace

    from lhvdbg.diagnose.report import make_report

    ev = recorded("timer-gate-missing", "amd64")
    kvm = replace(ev, events=(), int_log=False, accel="kvm")
    report = make_report(kvm)
    assert report.outcome == "double-fault"
    assert report.model is not None and report.model.first is not None
    assert report.model.first.check.id == "gate-present"
    assert report.model.first.check.fix_fields == ("idt[0x20].present",)
    assert any("inferred" in n for a in report.model.accounts for n in a.notes)
    assert report.diagnosis[0].id == "gate-not-present"
