"""Boot every firmware variant in real QEMU (TCG) and check how it ends.

The expectations are the variant table of docs/firmware.md: serial output, QEMU's exit
status (isa-debug-exit values read from the ELF's DWARF; 0 after a triple fault under
-no-reboot) and the chain of interrupts and exceptions in the `-d int,cpu_reset` log.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from lhvdbg.machine.launch import qemu_version
from tests.conftest import FIRMWARE, firmware_elf
from tests.firmware_facts import ARCH_VARIANTS, ARCHES, facts
from tests.integration.qemu_run import QemuResult, exit_status, run_qemu

pytestmark = pytest.mark.integration


def np_error_scale(arch: str) -> int:
    """The scale of QEMU TCG's #NP error code for a missing gate (vector*scale+2, never
    EXT): QEMU < 8.0 used vector*16+2 in long mode (its do_interrupt64, QEMU bug #1382),
    later versions vector*8+2 as in 32-bit mode. Read from the QEMU on PATH, which these
    tests run."""
    binary = shutil.which("qemu-system-x86_64")
    assert binary is not None
    major = int(qemu_version(binary).split(".")[0])
    return 16 if arch == "amd64" and major < 8 else 8


# The selector iret-bad-ss puts in the return frame (amd64: SS = kernel CS; i386: CS = data).
IRET_BAD_SELECTOR = {"amd64": "KERNEL_CS", "i386": "KERNEL_DS"}


def _int(vector: int) -> str:
    """QEMU's ``Servicing hardware INT=0x..`` line for ``vector``."""
    return f"^Servicing hardware INT={vector:#04x}$"


def boot(
    arch: str,
    variant: str,
    *,
    append: str | None = None,
    debug_exit: bool = True,
    until: str | None = None,
) -> tuple[Path, QemuResult]:
    elf = firmware_elf(arch, variant)
    return elf, run_qemu(arch, kernel=elf, append=append, debug_exit=debug_exit, until=until)


def symbol(elf: Path, name: str) -> int:
    with elf.open("rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        assert isinstance(symtab, SymbolTableSection), "stripped ELF"
        found = symtab.get_symbol_by_name(name)
        assert found, f"no symbol {name}"
        return int(found[0]["st_value"])


def index_of(events: list[str], pattern: str, start: int = 0) -> int:
    """Index of the first event at or after start that matches pattern."""
    for i in range(start, len(events)):
        if re.search(pattern, events[i]):
            return i
    raise AssertionError(f"no event matching {pattern!r} after #{start} in {events[-12:]}")


def assert_chain(events: list[str], patterns: list[str]) -> None:
    """The last len(patterns) events match patterns, in order."""
    tail = events[-len(patterns) :]
    assert len(tail) == len(patterns), events
    for event, pattern in zip(tail, patterns, strict=True):
        assert re.search(pattern, event), f"{event!r} !~ {pattern!r}; chain: {tail}"


def assert_banner(result: QemuResult, arch: str, variant: str) -> None:
    lines = result.serial.splitlines()
    assert lines[0] == f"LHV firmware {arch} variant={variant}"
    assert "int 0x30: ok (sent 0x1234, got 0x1235)" in lines


def assert_clean_run(elf: Path, result: QemuResult, ticks: int = 20, every: int = 5) -> None:
    lines = result.serial.splitlines()
    assert result.returncode == exit_status(elf, "LHV_EXIT_OK"), result.serial
    assert [line for line in lines if line.startswith("tick ")] == [
        f"tick {t}" for t in range(every, ticks + 1, every)
    ]
    done = re.fullmatch(r"done: (\d+) PIT ticks, (\d+) LAPIC ticks", lines[-2])
    assert done is not None, lines[-2]
    got = facts(elf.parent.name)
    assert lines[-1] == (
        f"exit: code {got.exit_codes['OK']:#x} to the isa-debug-exit device at port "
        f"{got.exit_port:#x}"
    )
    assert int(done[1]) == ticks
    assert int(done[2]) > 0  # the LAPIC timer ran too
    assert "Triple fault" not in result.log
    assert not any(" v=08 " in f" {e} " for e in result.events())


@pytest.mark.parametrize("arch", ARCHES)
def test_good_counts_ticks_and_exits_cleanly(firmware_built: Path, arch: str) -> None:
    elf, result = boot(arch, "good")
    assert_banner(result, arch, "good")
    assert_clean_run(elf, result)
    pit = facts(arch).vectors["PIT"]
    assert f"Servicing hardware INT={pit:#04x}" in result.events()


@pytest.mark.parametrize("arch", ARCHES)
def test_pic_unremapped_irq0_arrives_on_vector_8(firmware_built: Path, arch: str) -> None:
    elf, result = boot(arch, "pic-unremapped")
    assert_banner(result, arch, "pic-unremapped")
    assert result.returncode == exit_status(elf, "LHV_EXIT_DOUBLE_FAULT")
    # The vector-8 handler ran and saw the frame shifted by one word: no error code.
    assert "pic: left at the BIOS mapping" in result.serial
    assert "#DF verdict: NO error code" in result.serial
    frame = dict(re.findall(r"frame\[(\d)\] = (0x[0-9a-f]+)", result.serial))
    assert int(frame["1"], 16) == facts(arch).selectors["KERNEL_CS"]  # "rip" holds the CS
    assert symbol(elf, "_text_start") <= int(frame["0"], 16) < symbol(elf, "_text_end")
    # In the log: a hardware interrupt on vector 8, no exception anywhere.
    events = result.events()
    first_v08 = index_of(events, r"^\d+: v=08 ")
    assert events[first_v08 - 1] == "Servicing hardware INT=0x08"
    assert not any(e.startswith("check_exception") for e in events)


@pytest.mark.parametrize("arch", ARCHES)
def test_no_ltr_runs_like_good_with_tr_in_reset_state(firmware_built: Path, arch: str) -> None:
    elf, result = boot(arch, "no-ltr")
    assert_banner(result, arch, "no-ltr")
    assert "ltr=no" in result.serial
    assert_clean_run(elf, result)
    # Register dumps at each timer interrupt show TR never loaded: 0 / base 0 / limit 0xffff.
    tr = re.findall(r"^TR =(\S+) (\S+) (\S+)", result.log, re.M)
    assert tr, "no register dump in the log"
    selector, base, limit = tr[-1]
    assert (int(selector, 16), int(base, 16), int(limit, 16)) == (0, 0, 0xFFFF)


def test_ist_without_tss_triple_faults(firmware_built: Path) -> None:
    _, result = boot("amd64", "ist-without-tss")
    assert_banner(result, "amd64", "ist-without-tss")
    assert result.returncode == 0  # -no-reboot: the triple fault's reset ends QEMU
    assert result.serial.splitlines()[-1] == "sti"  # no handler printed anything
    pit = facts("amd64").vectors["PIT"]
    assert_chain(
        result.events(),
        [
            _int(pit),
            rf"^\d+: v={pit:02x} e=0000 ",  # logged before delivery, which then fails
            r"^check_exception old: 0xffffffff new 0xc$",  # #SS pushing onto the IST1 stack
            r"^\d+: v=0c e=0000 ",
            r"^check_exception old: 0xc new 0xc$",
            r"^\d+: v=08 e=0000 ",
            r"^check_exception old: 0x8 new 0xc$",
            r"^Triple fault$",
        ],
    )
    tr = re.findall(r"^TR =(\S+) (\S+) (\S+)", result.log, re.M)[-1]
    assert tuple(int(x, 16) for x in tr) == (0, 0, 0xFFFF)


@pytest.mark.parametrize("arch", ARCHES)
def test_timer_gate_missing_np_then_real_double_fault(firmware_built: Path, arch: str) -> None:
    elf, result = boot(arch, "timer-gate-missing")
    assert_banner(result, arch, "timer-gate-missing")
    assert result.returncode == exit_status(elf, "LHV_EXIT_DOUBLE_FAULT")
    assert "#DF verdict: error code 0x0 present: a real double fault" in result.serial
    pit = facts(arch).vectors["PIT"]
    assert_chain(
        result.events(),
        [
            _int(pit),
            rf"^\d+: v={pit:02x} e=0000 ",  # logged before delivery, which then fails
            r"^check_exception old: 0xffffffff new 0xb$",  # the timer's gate not present
            rf"^\d+: v=0b e={pit * np_error_scale(arch) + 2:04x} ",
            r"^check_exception old: 0xb new 0xb$",
            r"^\d+: v=08 e=0000 ",
        ],
    )


@pytest.mark.parametrize("arch", ARCHES)
def test_iret_bad_ss_gp_at_iret_then_double_fault(firmware_built: Path, arch: str) -> None:
    elf, result = boot(arch, "iret-bad-ss")
    assert_banner(result, arch, "iret-bad-ss")
    assert result.returncode == exit_status(elf, "LHV_EXIT_DOUBLE_FAULT")
    assert "#DF verdict: error code 0x0 present" in result.serial
    events = result.events()
    pit = facts(arch).vectors["PIT"]
    bad = facts(arch).selectors[IRET_BAD_SELECTOR[arch]]
    assert_chain(
        events,
        [
            _int(pit),
            rf"^\d+: v={pit:02x} e=0000 ",  # the first timer interrupt is delivered and handled
            r"^check_exception old: 0xffffffff new 0xd$",
            rf"^\d+: v=0d e={bad:04x} ",  # #GP(selector) at the iret
            r"^check_exception old: 0xd new 0xb$",  # no #GP gate
            r"^\d+: v=08 e=0000 ",
        ],
    )
    gp_ip = int(re.search(r"IP=[0-9a-f]+:([0-9a-f]+)", events[-3])[1], 16)  # type: ignore[index]
    isr_return = symbol(elf, "isr_return")
    assert isr_return < gp_ip < isr_return + 32  # the iret at the end of isr_common


@pytest.mark.parametrize("arch", ARCHES)
def test_stack_overflow_page_fault_double_fault_triple_fault(
    firmware_built: Path, arch: str
) -> None:
    elf, result = boot(arch, "stack-overflow")
    assert_banner(result, arch, "stack-overflow")
    assert result.returncode == 0
    events = result.events()
    assert_chain(
        events,
        [
            r"^check_exception old: 0xffffffff new 0xe$",
            r"^\d+: v=0e e=0002 ",  # write to a not-present page
            r"^check_exception old: 0xe new 0xe$",
            r"^\d+: v=08 e=0000 ",
            r"^check_exception old: 0x8 new 0xe$",
            r"^Triple fault$",
        ],
    )
    pf = re.search(r"SP=[0-9a-f]+:([0-9a-f]+) CR2=([0-9a-f]+)", events[-5])
    assert pf is not None, events[-5]
    sp, cr2 = int(pf[1], 16), int(pf[2], 16)
    assert symbol(elf, "boot_stack_guard") <= cr2 < symbol(elf, "boot_stack")
    assert abs(cr2 - sp) <= 16  # the push that ran off the stack


def test_command_line_sets_tick_count(firmware_built: Path) -> None:
    elf, result = boot("amd64", "good", append="ticks=3 every=1")
    assert 'settings: ticks=3 every=1 hz=100 softint=1 cmdline="' in result.serial
    assert_clean_run(elf, result, ticks=3, every=1)


def test_without_debug_exit_device_prints_and_halts(firmware_built: Path) -> None:
    got = facts("i386")
    said = (
        f"exit: code {got.exit_codes['OK']:#x} to the isa-debug-exit device at port "
        f"{got.exit_port:#x}"
    )
    elf = firmware_elf("i386", "good")
    # No device: the write goes nowhere and the CPU halts; QEMU runs on until killed.
    result = run_qemu("i386", kernel=elf, append="ticks=2", debug_exit=False, timeout=3)
    assert result.returncode is None and result.timed_out
    done, last = result.serial.splitlines()[-2:]
    assert re.fullmatch(r"done: 2 PIT ticks, \d+ LAPIC ticks", done)
    assert last == said


@pytest.fixture(scope="module")
def isos(firmware_built: Path) -> Path:
    subprocess.run(["make", "-s", "-C", str(FIRMWARE), "iso"], check=True, timeout=120)
    return firmware_built


@pytest.mark.parametrize("arch", ARCHES)
def test_grub_iso_boots_good(isos: Path, arch: str) -> None:
    elf = firmware_elf(arch, "good")
    result = run_qemu(arch, cdrom=isos / f"lhv-{arch}.iso", timeout=30)
    assert_banner(result, arch, "good")
    assert_clean_run(elf, result)


def test_every_built_variant_is_booted_here() -> None:
    """Each (arch, variant) of firmware/Makefile has a boot test in this module."""
    text = Path(__file__).read_text()
    booted = {v for v in re.findall(r'boot\((?:arch|"\w+"), "([\w-]+)"', text)}
    assert {variant for _, variant in ARCH_VARIANTS} <= booted
