"""The delivery model on states built from the layouts: each defect, the check that fails
first, and what the CPU raises (Intel SDM Vol. 2A INT n / IRET pseudo-code, Vol. 3A §6.13)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lhvdbg.x86.cpustate import SegmentRegister
from lhvdbg.x86.cpuview import CHECKS, CpuView, Event, idt_error_code
from lhvdbg.x86.delivery import combine, deliver, simulate
from lhvdbg.x86.iret import iret, pop_frame
from tests.unit.x86_state import (
    CODE_32,
    HANDLER,
    IST1_STACK,
    KERNEL_CS_64,
    KERNEL_DS,
    RSP0_STACK,
    STACK,
    TSS_SEL,
    Machine,
    code,
    data,
)

IRQ0 = Event.hardware(0x20)


def failed(machine: Machine, event: Event = IRQ0) -> tuple[str, int, int | None, tuple[str, ...]]:
    d = deliver(machine.view(), event)
    assert d.failed is not None, [c.text for c in d.checks]
    raised = d.failed.raises
    assert raised is not None
    return d.failed.id, raised.vector, raised.error_code, d.failed.fix_fields


@pytest.mark.parametrize("mode", ["ia32e", "legacy"])
def test_a_good_machine_delivers_on_the_current_stack(mode: str) -> None:
    m = Machine.flat(mode)  # type: ignore[arg-type]
    d = deliver(m.view(), IRQ0)
    assert d.failed is None and not d.undecided
    assert d.handler == HANDLER
    assert d.stack == "current"
    assert d.new_sp == STACK
    assert d.frame_size == (40 if mode == "ia32e" else 12)
    assert [c.id for c in d.checks][:4] == ["idt-limit", "gate-type", "gate-present", "cs-present"]


def test_idt_error_code_is_vector_times_eight_plus_idt_plus_ext() -> None:
    assert idt_error_code(0x20, True) == 0x103
    assert idt_error_code(0x0D, False) == 0x6A


@pytest.mark.parametrize(
    ("mode", "limit"), [("ia32e", 0x1FF), ("legacy", 0xFF), ("ia32e", 0x20 * 16 + 14)]
)
def test_idt_limit_short_of_the_vector_is_gp_with_the_idt_code(mode: str, limit: int) -> None:
    m = Machine.flat(mode)  # type: ignore[arg-type]
    m = Machine(**{**m.__dict__, "idt_limit": limit})
    assert failed(m) == ("idt-limit", 13, 0x103, ("idtr.limit",))


@pytest.mark.parametrize("gate_type", [0xC, 0x5, 0x6, 0x0])
def test_ia32e_takes_only_64_bit_interrupt_and_trap_gates(gate_type: int) -> None:
    m = Machine.flat("ia32e").with_gate(0x20, type=gate_type)
    assert failed(m) == ("gate-type", 13, 0x103, ("idt[0x20].type",))


def test_legacy_accepts_16_bit_and_task_gates_but_not_a_call_gate() -> None:
    m = Machine.flat("legacy")
    assert deliver(m.with_gate(0x20, type=0x6).view(), IRQ0).failed is None
    assert failed(m.with_gate(0x20, type=0xC))[0] == "gate-type"


def test_not_present_gate_is_np_and_checked_after_the_type() -> None:
    m = Machine.flat("ia32e").with_gate(0x20, present=0)
    assert failed(m) == ("gate-present", 11, 0x103, ("idt[0x20].present",))
    # both wrong: the type is checked first
    assert failed(m.with_gate(0x20, type=0x5))[0] == "gate-type"


def test_gate_dpl_is_checked_only_for_software_interrupts_from_an_outer_ring() -> None:
    m = Machine.flat("ia32e", cpl=3).with_gate(0x30, dpl=0)
    soft = Event(0x30, "software")
    assert failed(m, soft) == ("gate-dpl", 13, 0x30 * 8 + 2, ("idt[0x30].dpl",))
    assert deliver(m.view(), Event.hardware(0x30)).failed is None
    assert deliver(m.with_gate(0x30, dpl=3).view(), soft).failed is None


@pytest.mark.parametrize(
    ("selector", "check", "vector", "code"),
    [
        (0x00, "cs-null", 13, 1),
        (0x80, "cs-limit", 13, 0x81),
        (0x1C, "cs-limit", 13, 0x1D),  # TI=1: the LDT
        (KERNEL_DS, "cs-type", 13, 0x19),
        (CODE_32, "cs-long", 13, 0x11),
        (TSS_SEL, "cs-type", 13, 0x21),
    ],
)
def test_the_gates_selector_must_name_64_bit_code(
    selector: int, check: str, vector: int, code: int
) -> None:
    m = Machine.flat("ia32e").with_gate(0x20, selector=selector)
    got = failed(m)
    assert got[:3] == (check, vector, code)
    assert "idt[0x20].selector" in got[3]


def test_code_segment_dpl_above_cpl_and_not_present() -> None:
    m = Machine.flat("ia32e")
    assert failed(m.with_descriptor(KERNEL_CS_64, code("ia32e", dpl=3)))[:3] == (
        "cs-dpl",
        13,
        0x09,
    )
    assert failed(m.with_descriptor(KERNEL_CS_64, code("ia32e", present=0)))[:3] == (
        "cs-present",
        11,
        0x09,
    )


def test_legacy_takes_a_32_bit_code_segment() -> None:
    m = Machine.flat("legacy")
    assert deliver(m.view(), IRQ0).failed is None
    assert failed(m.with_gate(0x20, selector=KERNEL_DS))[0] == "cs-type"


def test_non_canonical_handler_offset() -> None:
    m = Machine.flat("ia32e").with_gate(0x20, offset=0x0000_8000_0000_0000)
    assert failed(m) == ("target-offset", 13, 1, ("idt[0x20].offset",))


def test_ist_reads_the_tss_slot_and_aligns_it_down() -> None:
    m = Machine.flat("ia32e").with_gate(0x20, ist=1).with_tss(ist1=IST1_STACK + 8)
    d = deliver(m.view(), IRQ0)
    assert d.failed is None and d.stack == "ist1" and d.new_sp == IST1_STACK


def test_ist_slot_beyond_trs_limit_is_ts_with_the_tr_selector() -> None:
    m = Machine.flat("ia32e").with_gate(0x20, ist=1).with_tr(limit=0x2A)  # IST1 is bytes 0x24..0x2b
    assert failed(m) == ("tss-limit", 10, TSS_SEL | 1, ("tr.limit",))


def test_non_canonical_ist_pointer_is_ss() -> None:
    m = Machine.flat("ia32e").with_gate(0x20, ist=1).with_tss(ist1=0x0000_8000_0000_1000)
    assert failed(m) == ("stack-pointer", 12, 1, ("tss.ist1",))


def test_ist_with_tr_never_loaded_reads_linear_0x24() -> None:
    m = Machine.flat("ia32e").with_gate(0x20, ist=1).with_tr(selector=0, base=0, limit=0xFFFF)
    ivt = (0xF000D42EF000E987).to_bytes(8, "little")
    view = CpuView.of(
        m.cpu(), m.tables(), read_linear=lambda a, n: (bytes(0x24) + ivt + bytes(64))[a : a + n]
    )
    d = deliver(view, IRQ0)
    assert d.failed is not None and d.failed.id == "stack-pointer"
    assert d.failed.fix_fields == ("tr",)
    assert "never loaded" in d.failed.text


def test_privilege_change_uses_rsp0() -> None:
    m = Machine.flat("ia32e", cpl=3)
    d = deliver(m.view(), IRQ0)
    assert d.failed is None and d.stack == "rsp0" and d.new_sp == RSP0_STACK
    bad = m.with_tss(rsp0=0x0000_8000_0000_0000)
    assert failed(bad) == ("stack-pointer", 12, 1, ("tss.rsp0",))


@pytest.mark.parametrize(
    ("ss0", "check", "vector", "code"),
    [
        (0x00, "ss0-null", 10, 1),
        (CODE_32, "ss0-invalid", 10, 0x11),
        (0x28, "ss0-invalid", 10, 0x29),  # DPL-3 data, RPL 0 ≠ DPL
        (0x2B, "ss0-invalid", 10, 0x29),  # RPL 3 ≠ new CPL 0
    ],
)
def test_legacy_privilege_change_checks_ss0(ss0: int, check: str, vector: int, code: int) -> None:
    m = Machine.flat("legacy", cpl=3).with_tss(ss0=ss0)
    assert failed(m) == (check, vector, code, ("tss.ss0",))


def test_legacy_privilege_change_pushes_ss_and_esp() -> None:
    d = deliver(Machine.flat("legacy", cpl=3).view(), IRQ0)
    assert d.failed is None and d.stack == "ss0:esp0" and d.frame_size == 20


def test_read_only_ss0_is_invalid() -> None:
    m = Machine.flat("legacy", cpl=3).with_descriptor(KERNEL_DS, data("legacy", writable=False))
    assert failed(m)[0] == "ss0-invalid"


def test_task_gate_needs_an_available_tss() -> None:
    m = Machine.flat("legacy").with_gate(8, type=0x5, selector=TSS_SEL)
    # the flat TSS descriptor is busy (type 0xB): a task switch to it is refused
    assert failed(m, Event(8, "exception", 0))[:3] == ("task-gate-tss", 13, 0x20)


def test_combination_table_6_5() -> None:
    gp = Event(13, "exception", 0)
    assert combine(gp, 11) == "double-fault"
    assert combine(Event(14, "exception", 2), 14) == "double-fault"
    assert combine(Event(14, "exception", 2), 13) == "double-fault"
    assert combine(gp, 14) == "deliver"
    assert combine(IRQ0, 13) == "deliver"
    assert combine(Event(8, "exception", 0), 14) == "triple-fault"


def test_simulate_follows_not_present_gates_to_df() -> None:
    m = Machine.flat("ia32e").with_gate(0x20, present=0).with_gate(11, present=0)
    deliveries, triple = simulate(m.view(), IRQ0)
    assert [d.event.vector for d in deliveries] == [0x20, 11, 8]
    assert deliveries[1].event.ext  # raised while delivering a hardware interrupt
    assert deliveries[1].raised is not None and deliveries[1].raised.error_code == 0x5B
    assert not triple and deliveries[-1].failed is None


def test_simulate_ends_in_a_triple_fault_when_df_cannot_be_delivered() -> None:
    m = Machine.flat("ia32e").with_gate(0x20, present=0)
    m = m.with_gate(11, present=0).with_gate(8, present=0)
    deliveries, triple = simulate(m.view(), IRQ0)
    assert triple and [d.event.vector for d in deliveries] == [0x20, 11, 8]


@pytest.mark.parametrize(
    ("words", "check", "code", "fix"),
    [
        ((0x100000, KERNEL_CS_64, 0x202, STACK, KERNEL_DS), None, None, None),
        ((0x100000, KERNEL_CS_64, 0x202, STACK, KERNEL_CS_64), "iret-ss-type", 8, "iret_frame.ss"),
        ((0x100000, KERNEL_CS_64, 0x202, STACK, 0x2B), "iret-ss-rpl", 0x28, "iret_frame.ss"),
        ((0x100000, KERNEL_DS, 0x202, STACK, KERNEL_DS), "iret-cs-type", 0x18, "iret_frame.cs"),
        ((0x100000, 0, 0x202, STACK, KERNEL_DS), "iret-cs-null", 0, "iret_frame.cs"),
        ((0x100000, 0x80, 0x202, STACK, KERNEL_DS), "iret-cs-limit", 0x80, "iret_frame.cs"),
        ((1 << 63, KERNEL_CS_64, 0x202, STACK, KERNEL_DS), "iret-rip", 0, "iret_frame.rip"),
        ((0x100000, KERNEL_CS_64, 0x202, STACK, 0), None, None, None),  # null SS at CPL 0
    ],
)
def test_iretq_checks(
    words: tuple[int, ...], check: str | None, code: int | None, fix: str | None
) -> None:
    m = Machine.flat("ia32e")
    result = iret(m.view(), pop_frame(m.view(), words))
    if check is None:
        assert result.failed is None
        return
    assert result.failed is not None and result.failed.id == check
    assert result.raised is not None and result.raised.error_code == code
    assert result.failed.fix_fields == (fix,)


def test_same_privilege_32_bit_iret_pops_no_ss() -> None:
    m = Machine.flat("legacy")
    frame = pop_frame(m.view(), (0x100000, CODE_32, 0x202, 0xDEAD, 0xBEEF))
    assert frame.ss is None and frame.rsp is None
    assert set(frame.to_dict()) == {"rip", "cs", "rflags"}
    assert iret(m.view(), frame).failed is None
    bad = pop_frame(m.view(), (0x100000, KERNEL_DS, 0x202))
    assert iret(m.view(), bad).failed is not None


def test_every_check_id_is_documented_with_an_sdm_place() -> None:
    assert all(place.startswith("Vol.") for place in CHECKS.values())
    assert {"idt-limit", "gate-present", "stack-push", "iret-ss-type"} <= set(CHECKS)


def test_qemu_tcg_reads_eight_bytes_at_ss0_esp0() -> None:
    """A 32-bit TSS limit of 9 covers ESP0 and SS0 (offsets 4..9): a CPU switches stacks,
    QEMU TCG (get_ss_esp_from_tss reads 8 bytes) raises #TS — named as QEMU's."""
    m = Machine.flat("legacy", cpl=3).with_tr(limit=0x9)
    assert deliver(m.view(), IRQ0).failed is None
    tcg = replace(m.view(), qemu_tcg=True)
    d = deliver(tcg, IRQ0)
    assert d.failed is not None and d.failed.id == "tss-limit" and "QEMU TCG" in d.failed.text
    assert d.failed.fix_fields == ("tr.limit",)


def test_an_earlier_moment_reads_its_own_tss_and_a_later_switch_made_the_df_tss_busy() -> None:
    """Captured inside the #DF task (TR = its TSS, busy); the event happened in the main
    task: the model uses the event's TR and takes the busy bit as the later switch's."""
    m = Machine.flat("legacy").with_gate(8, type=0x5, selector=TSS_SEL)
    tables = m.tables()
    earlier = m.cpu()
    main_tr = SegmentRegister(0x28, 0x10B000, 0x67, 0x8B00)
    earlier = replace(earlier, segments={**earlier.segments, "tr": main_tr})
    view = CpuView.of(earlier, tables)
    assert view.switched_to == TSS_SEL and view.tables.tr == main_tr and view.tables.tss is None
    assert deliver(view, Event(8, "exception", 0)).failed is None
