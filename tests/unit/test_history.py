"""The pure parts of ``lhvdbg trace``/``compare``: device decoders, instruction sites,
the ``-D`` log parser, history building and the comparison."""

from __future__ import annotations

from lhvdbg.diagnose.history import compare_histories, milestones, pic_story, weight
from lhvdbg.machine.trace import parse_log
from lhvdbg.state.history import History, HistoryEvent, build_history
from lhvdbg.x86.insn_sites import scan
from lhvdbg.x86.pio import DeviceDecoder, lapic_write_text, pit_rate_text


def writes(decoder: DeviceDecoder, *pairs: tuple[int, int]) -> list[str]:
    return [decoder.port_write(port, value).text for port, value in pairs]


def test_pic_initialisation_sequence_is_decoded_by_meaning() -> None:
    texts = writes(
        DeviceDecoder(),
        (0x20, 0x11),
        (0x21, 0x20),
        (0x21, 0x04),
        (0x21, 0x01),
        (0x21, 0xFE),
        (0x20, 0x20),
        (0x20, 0x0B),
    )
    assert texts == [
        "master ICW1: start initialisation (edge, cascade, ICW4 follows)",
        "master ICW2: vector base 0x20",
        "master ICW3: slave on IR2",
        "master ICW4: 8086 mode",
        "master OCW1: mask 0xfe (IRQ0 unmasked)",
        "master OCW2: non-specific EOI",
        "master OCW3: read ISR",
    ]


def test_a_data_write_without_icw1_is_a_mask() -> None:
    d = DeviceDecoder().port_write(0xA1, 0xFF)
    assert (d.name, d.text) == ("OCW1", "slave OCW1: mask 0xff (all masked)")


def test_single_pic_without_icw4_expects_only_icw2() -> None:
    texts = writes(DeviceDecoder(), (0x20, 0x12), (0x21, 0x40), (0x21, 0x00))
    assert texts[1] == "master ICW2: vector base 0x40"
    assert texts[2].startswith("master OCW1: mask 0x00")


def test_pit_control_and_divisor() -> None:
    decoder = DeviceDecoder()
    texts = writes(decoder, (0x43, 0x34), (0x40, 11932 & 0xFF), (0x40, 11932 >> 8))
    assert texts[0] == "PIT ch0: mode 2 (rate generator), low then high byte"
    assert texts[2] == "PIT ch0 mode 2, divisor 11932 = 100 Hz"
    assert pit_rate_text(0) == "divisor 0 = 18.21 Hz"


def test_reset_and_debug_exit_and_kbc() -> None:
    decoder = DeviceDecoder()
    assert decoder.port_write(0xCF9, 0x06).text == "0xCF9: hard reset requested"
    assert decoder.port_write(0xCF9, 0x02).text == "0xCF9: reset type selected, no reset yet"
    assert decoder.port_write(0xF4, 0x10).text == "isa-debug-exit: guest exits, QEMU status 33"
    assert decoder.port_write(0x64, 0xFE).text == "KBC: pulse reset line (CPU reset)"


def test_lapic_writes() -> None:
    assert lapic_write_text(0x320, 0x20022) == "LAPIC LVT timer: vector 0x22, periodic"
    assert lapic_write_text(0xF0, 0x1FF) == "LAPIC SVR: APIC enabled, spurious vector 0xff"
    assert lapic_write_text(0x350, 0x700) == "LAPIC LVT LINT0: ExtINT, vector 0x00"
    assert lapic_write_text(0x3E0, 0x3) == "LAPIC timer divide by 16"
    assert lapic_write_text(0xB0, 0) == "LAPIC EOI"


def test_scan_finds_each_instruction_and_its_prefixes() -> None:
    code = bytes.fromhex(
        "0f0115 00000000"  # lgdt [rip+0]
        "0f011d 00000000"  # lidt [rip+0]
        "0f00d8"  # ltr ax
        "0f22d8"  # mov cr3, rax
        "440f22c0"  # mov cr8, rax (REX.R)
        "0f30"  # wrmsr
        "fb fa"  # sti; cli
        "e621"  # out 0x21, al
        "e680"  # out 0x80, al (not tracked)
        "66ef"  # out dx, ax
    )
    sites = {(s.address, s.kind, s.port, s.cr, s.size) for s in scan(code, 0x1000, ports={0x21})}
    assert (0x1000, "lgdt", None, None, 1) in sites
    assert (0x1007, "lidt", None, None, 1) in sites
    assert (0x100E, "ltr", None, None, 1) in sites
    assert (0x1011, "mov-cr", None, 3, 1) in sites
    assert (0x1014, "mov-cr", None, 8, 1) in sites  # at the REX prefix: CR8
    assert (0x1018, "wrmsr", None, None, 1) in sites
    assert (0x101A, "sti", None, None, 1) in sites
    assert (0x101B, "cli", None, None, 1) in sites
    assert (0x101C, "out", 0x21, None, 1) in sites
    assert not any(s[2] == 0x80 for s in sites)
    assert (0x1020, "out", None, None, 2) in sites  # 66 EF: out dx, ax


LOG = """\
apic_mem_writel 0xf0 = 0x000001ff
Servicing hardware INT=0x08
pic_ioport_write master 1 addr 0x1 val 0x8
pic_ioport_write master 0 addr 0x1 val 0x70
apic_register_write register 0x32 = 0x20022
     0: v=30 e=0000 i=1 cpl=0 IP=0008:0000000000103491 pc=0000000000103491 SP=0018:0
Servicing hardware INT=0x08
     1: v=08 e=0000 i=0 cpl=3 IP=0008:00000000001035af pc=00000000001035af SP=0018:0
check_exception old: 0xffffffff new 0xd
     2: v=0d e=0102 i=0 cpl=0 IP=0008:00000000001035af pc=00000000001035af SP=0018:0
Triple fault
"""


def test_parse_log_reads_trace_and_int_lines_with_offsets() -> None:
    events = parse_log(LOG)
    kinds = [(e.kind, e.name, e.value) for _, e in events]
    assert kinds == [
        ("lapic", "", 0x1FF),
        ("port", "pic-trace", 0x8),
        ("port", "pic-trace", 0x70),
        ("lapic", "", 0x20022),
        ("interrupt", "int", 0x30),
        ("interrupt", "irq", 0x08),
        ("interrupt", "exception", 0x0D),
        ("fault", "triple fault", None),
    ]
    assert events[0][0] == 0
    assert events[1][0] == LOG.index("pic_ioport_write")
    assert (events[1][1].port, events[2][1].port) == (0x21, 0xA1)
    assert events[3][1].address == 0xFEE00320  # QEMU 10 gives the register index
    assert events[5][1].facts == {"cpl": 3}
    assert events[5][1].rip == 0x1035AF


def port(value: int, port_: int, symbol: str) -> HistoryEvent:
    return HistoryEvent(0, "port", port=port_, value=value, rip=0x1000, symbol=symbol)


def irq(vector: int) -> HistoryEvent:
    return HistoryEvent(0, "interrupt", value=vector, name="irq", decoded="hardware interrupt")


def ltr() -> HistoryEvent:
    return HistoryEvent(
        0, "insn", insn="ltr", value=0x20, name="ltr", decoded="TR = 0x20", symbol="tss_load+0x5"
    )


PIC_INIT = [
    port(0x11, 0x20, "pic_init+0x9"),
    port(0x11, 0xA0, "pic_init+0x14"),
    port(0x20, 0x21, "pic_init+0x1c"),
    port(0x28, 0xA1, "pic_init+0x24"),
    port(0x04, 0x21, "pic_init+0x2f"),
    port(0x02, 0xA1, "pic_init+0x3a"),
    port(0x01, 0x21, "pic_init+0x47"),
    port(0x01, 0xA1, "pic_init+0x4f"),
]
GOOD = build_history([ltr(), *PIC_INIT, irq(0x20), port(0x20, 0x20, "pic_eoi+0x11"), irq(0x20)])
UNREMAPPED = build_history([irq(0x08), port(0x11, 0xF4, "lhv_exit+0x8")])


def test_history_names_irqs_by_the_bases_programmed_so_far() -> None:
    assert GOOD.events[9].decoded.endswith("IRQ0 (master PIC base 0x20, set by the kernel)")
    assert UNREMAPPED.events[0].decoded.endswith("IRQ0 (master PIC base 0x08, the BIOS's)")
    assert [e.seq for e in GOOD.events] == list(range(1, 13))


def test_pic_story() -> None:
    assert pic_story(UNREMAPPED).startswith(
        "ICW1 was never written: the PIC kept the BIOS base 0x08"
    )
    assert pic_story(GOOD) == "ICW2 0x20 written at pic_init+0x1c"


def test_milestones_count_repeated_steps_once() -> None:
    names = [e.name for e in milestones(GOOD)]
    assert names.count("irq") == 1 and names.count("OCW2") == 1


def test_compare_names_the_pic_first_and_what_followed() -> None:
    comparison = compare_histories(GOOD, UNREMAPPED)
    first = comparison.first_divergence
    assert first is not None and first.kind == "missing"
    assert first.explanation == (
        "the good build wrote ICW1–ICW4 (base 0x20) in pic_init; this build never did; "
        "then IRQ0 arrived on 0x08 (in the good build: 0x20)"
    )
    kinds = [(d.kind, d.matters) for d in comparison.differences]
    assert ("missing", True) in kinds[1:]  # the ltr: latent, listed after
    data = comparison.to_dict()
    assert set(data["first_divergence"]) == {"kind", "matters", "explanation", "good", "bad"}


def test_compare_a_missing_ltr_alone_is_latent() -> None:
    bad = build_history([*PIC_INIT, irq(0x20), port(0x20, 0x20, "pic_eoi+0x11")])
    comparison = compare_histories(GOOD, bad)
    assert [d.kind for d in comparison.differences] == ["missing"]
    first = comparison.first_divergence
    assert first is not None and weight(first.good[0]) == 1
    assert "no exception and no interrupt from ring 3" in first.explanation


def test_compare_a_missing_ltr_comes_first_when_the_run_then_needed_the_tss() -> None:
    """ist-without-tss: no ltr, then IRQ0's IST gate made the CPU read a TSS that was never
    loaded: #SS, #DF, a triple fault. The LAPIC timer the good run took afterwards (weight
    2, later in time) is not the first divergence."""
    ss = HistoryEvent(0, "interrupt", value=0x0C, name="exception",
                      decoded="exception vector 0x0c (error code 0x0)")  # fmt: skip
    fault = HistoryEvent(0, "fault", name="triple fault", decoded="triple fault: the CPU resets")
    good = build_history([ltr(), *PIC_INIT, irq(0x20), irq(0x22)])
    bad = build_history([*PIC_INIT, irq(0x20), ss, fault])
    comparison = compare_histories(good, bad)
    first = comparison.first_divergence
    assert first is not None and [e.insn for e in first.good] == ["ltr"] and first.bad == ()
    assert first.explanation == (
        "the good build ran ltr (TR = 0x20) in tss_load; this build never did; "
        "then this run took exception vector 0x0c (error code 0x0)"
    )
    assert [d.good[0].value for d in comparison.differences[1:] if d.kind == "missing"] == [0x22]


def test_compare_names_what_this_run_did_instead_before_what_it_then_never_did() -> None:
    """iret-bad-ss: after IRQ0 and its EOI the good run took the LAPIC timer; this one's
    iret raised #GP, then #DF, and it exited. Both are weight 2 at the same point: the #GP
    (what happened) is the divergence, the missing timer interrupt its consequence."""
    gp = HistoryEvent(0, "interrupt", value=0x0D, name="exception",
                      decoded="exception vector 0x0d (error code 0x8)")  # fmt: skip
    df = HistoryEvent(0, "interrupt", value=0x08, name="exception",
                      decoded="exception vector 0x08 (error code 0x0)")  # fmt: skip
    eoi = port(0x20, 0x20, "pic_eoi+0x11")
    good = build_history([ltr(), *PIC_INIT, irq(0x20), eoi, irq(0x22), port(0x10, 0xF4, "x")])
    bad = build_history([ltr(), *PIC_INIT, irq(0x20), eoi, gp, df, port(0x11, 0xF4, "x")])
    first = compare_histories(good, bad).first_divergence
    assert first is not None and first.kind == "extra" and first.bad[0].value == 0x0D
    assert first.explanation.startswith(
        "this build took exception vector 0x0d (error code 0x8); the good build never did; "
        "nothing the kernel programmed differs before it"
    )


def test_compare_identical_runs_has_no_divergence() -> None:
    comparison = compare_histories(GOOD, GOOD)
    assert comparison.first_divergence is None and comparison.differences == ()
    assert History(()).kernel_events() == []
