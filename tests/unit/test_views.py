"""View commands (regs, sregs, cregs, gdt, idt, tss, pic, lapic, pt), show and diff, on
real captured snapshots: golden plain text and JSON with real values."""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import pytest

from lhvdbg.cli import main
from lhvdbg.commands.registry import Context, load_all
from lhvdbg.errors import UsageError
from lhvdbg.state.snapshot import Snapshot
from lhvdbg.state.target import SnapshotTarget
from tests.firmware_facts import facts
from tests.unit.recorded_snapshots import SNAPSHOTS, recorded

Golden = Callable[[str, str], None]


def run_shell_command(line: list[str], snapshot: Snapshot, previous: object = None) -> str:
    """Run a registered view command as the shell does, on a SnapshotTarget."""
    registry = load_all()
    cmd = registry.get(line[0])
    assert "shell" in cmd.where and "scenario" in cmd.where
    out = io.StringIO()
    ctx = Context(stdout=out, color=False, width=160, target=SnapshotTarget(snapshot))
    if previous is not None:
        ctx.state["previous"] = previous
    args = cmd.parser().parse_args(line[1:])
    assert cmd.run(args, ctx) == 0
    return out.getvalue()


VIEW_CASES = [
    ("regs", ["regs"], "lhv-good-amd64"),
    ("regs-i386", ["regs"], "lhv-good-i386"),
    ("sregs", ["sregs"], "lhv-good-amd64"),
    ("sregs-no-ltr", ["sregs"], "lhv-no-ltr-amd64"),
    ("cregs", ["cregs"], "lhv-good-amd64"),
    ("gdt", ["gdt"], "lhv-good-amd64"),
    ("gdt-tss", ["gdt", f"{facts('amd64').selectors['TSS']:#x}"], "lhv-good-amd64"),
    ("gdt-pebbles-tss", ["gdt", "0x8"], "pebbles"),
    ("idt-df", ["idt", "8"], "lhv-good-i386"),
    ("tss", ["tss"], "lhv-good-amd64"),
    ("tss-i386", ["tss"], "lhv-good-i386"),
    ("tss-no-ltr", ["tss"], "lhv-no-ltr-amd64"),
    ("pic", ["pic"], "lhv-good-amd64"),
    ("pic-unremapped", ["pic"], "lhv-pic-unremapped-amd64"),
    ("lapic", ["lapic"], "lhv-good-amd64"),
]


def rows(text: str) -> dict[str, list[str]]:
    """Each table line by its first word: ``{"rip": ["rip", "0x...", ...]}``."""
    return {line.split()[0]: line.split() for line in text.splitlines() if line.strip()}


def _word(snap: Snapshot, address: int, size: int) -> int:
    """``size`` bytes of the snapshot's memory at ``address``, little-endian (read here,
    not through the layouts the views use)."""
    return int.from_bytes(snap.read(address, size), "little")


def _check_regs(text: str, snap: Snapshot) -> None:
    r, width = rows(text), 18 if snap.arch == "amd64" else 10
    ip = "rip" if snap.arch == "amd64" else "eip"
    assert r[ip][1] == f"{snap.cpu.ip:#0{width}x}"
    for name, value in snap.cpu.gprs.items():
        assert int(r[name][1], 16) == value, name


def _check_sregs(text: str, snap: Snapshot) -> None:
    r, sel = rows(text), facts(snap.arch).selectors
    assert int(r["cs"][1], 16) == sel["KERNEL_CS"] == snap.cpu.segments["cs"].selector
    assert int(r["ss"][1], 16) == sel["KERNEL_DS"]
    tr = snap.cpu.segments["tr"]
    assert [int(v, 16) for v in r["tr"][1:4]] == [tr.selector, tr.base, tr.limit]
    assert (int(r["gdtr"][1], 16), int(r["gdtr"][2], 16)) == (
        snap.cpu.gdtr.base,
        snap.cpu.gdtr.limit,
    )


def _check_sregs_no_ltr(text: str, snap: Snapshot) -> None:
    _check_sregs(text, snap)
    assert rows(text)["tr"][1:4] == ["0x0000", "0x0", "0xffff"]  # the reset state
    assert "TR was never loaded" in text


def _check_cregs(text: str, snap: Snapshot) -> None:
    r = rows(text)
    assert int(r["cr0"][1], 16) == snap.cpu.cr0 and {"pe", "pg"} <= set(r["cr0"][2:])
    assert int(r["cr3"][1], 16) == snap.cpu.cr3
    assert "pae" in r["cr4"] and {"lme", "lma"} <= set(r["efer"])  # long mode


def _check_gdt(text: str, snap: Snapshot) -> None:
    r, sel = rows(text), facts("amd64").selectors
    by_sel = {int(v[1], 16): v for k, v in r.items() if k.isdigit()}
    assert by_sel[sel["KERNEL_CS"]][2] == "code" and "L" in by_sel[sel["KERNEL_CS"]]
    assert by_sel[sel["KERNEL_DS"]][2] == "data"
    tss = by_sel[sel["TSS"]]
    assert tss[2] == "system" and int(tss[3], 16) == snap.cpu.segments["tr"].base
    assert by_sel[sel["TSS"] + 8][2] == "second-half"  # a 16-byte descriptor

    def dpl(selector: int) -> str:
        row = by_sel[selector & ~3]
        return row[row.index("P") - 1]  # the column before the present flag

    assert [dpl(sel[n]) for n in ("KERNEL_CS", "KERNEL_DS", "USER_CS", "USER_DS")] == list("0033")


def _check_gdt_entry(text: str, snap: Snapshot) -> None:
    tr = snap.cpu.segments["tr"]
    assert f"base {tr.base:#x}, limit {tr.limit:#x}" in text.splitlines()[0]
    assert int(rows(text)["base"][2], 16) == tr.base


def _check_idt_df(text: str, snap: Snapshot) -> None:
    gate = snap.cpu.idtr.base + 8 * 8  # a legacy gate: offset in bytes 0-1 and 6-7
    offset = _word(snap, gate, 2) | _word(snap, gate + 6, 2) << 16
    assert int(rows(text)["offset"][2], 16) == offset
    assert int(rows(text)["selector"][2], 16) == facts("i386").selectors["KERNEL_CS"]
    assert f"-> {facts('i386').selectors['KERNEL_CS']:#06x}:{offset:#x}" in text


def _check_tss(text: str, snap: Snapshot) -> None:
    base, r = snap.cpu.segments["tr"].base, rows(text)
    if snap.arch == "amd64":  # SDM Figure 7-11: RSP0 at 4, IST1 at 0x24, the map base at 0x66
        assert int(r["rsp0"][2], 16) == _word(snap, base + 4, 8) != 0
        assert int(r["ist1"][2], 16) == _word(snap, base + 0x24, 8) != 0
    else:  # Figure 7-2: ESP0 at 4, SS0 at 8
        assert int(r["esp0"][2], 16) == _word(snap, base + 4, 4) != 0
        assert int(r["ss0"][2], 16) == facts("i386").selectors["KERNEL_DS"]
    assert int(r["io_map_base"][2], 16) == _word(snap, base + 0x66, 2) == 0x68


def _check_tss_no_ltr(text: str, snap: Snapshot) -> None:
    assert snap.cpu.segments["tr"].selector == 0
    assert text.startswith("tss: TR was never loaded")


def _check_pic(text: str, snap: Snapshot) -> None:
    r = rows(text)
    assert snap.pic is not None
    for chip in ("master", "slave"):
        state = getattr(snap.pic, chip)
        assert int(r[chip][1], 16) == state.irq_base
        assert r[chip][2] == f"{state.irq_base:#04x}-{state.irq_base + 7:#04x}"
        assert int(r[chip][5], 16) == state.imr


def _check_pic_good(text: str, snap: Snapshot) -> None:
    _check_pic(text, snap)
    master, slave = facts("amd64").pic_bases
    assert (int(rows(text)["master"][1], 16), int(rows(text)["slave"][1], 16)) == (master, slave)


def _check_pic_unremapped(text: str, snap: Snapshot) -> None:
    _check_pic(text, snap)
    assert (rows(text)["master"][1], rows(text)["slave"][1]) == ("0x08", "0x70")  # the BIOS's
    assert rows(text)["master"][-1] == "IRQ0"  # the PIT in service
    assert "inside the CPU exception range" in text


def _check_lapic(text: str, snap: Snapshot) -> None:
    assert snap.lapic is not None
    vector = facts("amd64").vectors["LAPIC_TIMER"]
    timer = text.split("lvt timer")[1].splitlines()[0].split()
    assert int(timer[0], 16) == snap.lapic.lvt_timer and timer[2] == f"{vector:#x},"
    assert "periodic," in timer
    svr = rows(text)["svr"]
    spurious = facts("amd64").vectors["LAPIC_SPURIOUS"]
    assert int(svr[1], 16) == snap.lapic.svr and svr[-1] == f"{spurious:#x}"
    assert int(text.split("timer initial")[1].split()[0]) == snap.lapic.timer_initial


VIEW_CHECKS: dict[str, Callable[[str, Snapshot], None]] = {
    "regs": _check_regs,
    "regs-i386": _check_regs,
    "sregs": _check_sregs,
    "sregs-no-ltr": _check_sregs_no_ltr,
    "cregs": _check_cregs,
    "gdt": _check_gdt,
    "gdt-tss": _check_gdt_entry,
    "gdt-pebbles-tss": _check_gdt_entry,
    "idt-df": _check_idt_df,
    "tss": _check_tss,
    "tss-i386": _check_tss,
    "tss-no-ltr": _check_tss_no_ltr,
    "pic": _check_pic_good,
    "pic-unremapped": _check_pic_unremapped,
    "lapic": _check_lapic,
}


@pytest.mark.parametrize(("golden_name", "line", "fixture"), VIEW_CASES)
def test_view_golden(golden: Golden, golden_name: str, line: list[str], fixture: str) -> None:
    """The golden text, and the values in it against the snapshot (and the firmware's
    DWARF) read independently of the view."""
    snap = recorded(fixture)
    text = run_shell_command(line, snap)
    golden(f"views/{golden_name}.txt", text)
    VIEW_CHECKS[golden_name](text, snap)


def test_every_golden_view_has_a_semantic_check() -> None:
    assert {name for name, _, _ in VIEW_CASES} == set(VIEW_CHECKS)


def test_regs_marks_changes_since_previous(golden: Golden) -> None:
    before = recorded("lhv-good-amd64")
    text = run_shell_command(["regs"], recorded("lhv-pic-unremapped-amd64"), previous=before)
    golden("views/regs-changed.txt", text)
    lines = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    assert "*rax" in lines and "0x0000000000000004" in lines["*rax"]  # the old value
    assert "*rip" in lines and "0x0000000000102092" in lines["*rip"]  # re-recorded build
    assert "rdx" in lines  # unchanged: no marker
    assert "*rdi" not in lines


def test_pic_marks_changes_with_previous_snapshot() -> None:
    text = run_shell_command(
        ["pic"], recorded("lhv-pic-unremapped-amd64"), previous=recorded("lhv-good-amd64")
    )
    assert "*master" in text and "*slave" in text
    assert "base 0x20 imr 0xf8 isr 0x00" in text
    assert "not remapped" in text


def test_previous_cpu_state_only_marks_registers() -> None:
    prev = recorded("lhv-no-ltr-amd64").cpu
    text = run_shell_command(["sregs"], recorded("lhv-good-amd64"), previous=prev)
    assert "*tr" in text
    assert "sel 0x0000 base 0x0 limit 0xffff flags 0x00008b00" in text  # what TR was
    assert "*cs" not in text


def test_tss_previous_snapshot_uses_field_table() -> None:
    older = recorded("lhv-good-amd64")  # a later stop of the same kernel, TSS unchanged
    text = run_shell_command(["tss"], recorded("lhv-good-amd64"), previous=older)
    assert "was" in text.splitlines()[1]  # the comparing table
    assert "*" not in text  # the TSS did not change


def json_of(line: list[str], fixture: str) -> object:
    return json.loads(run_shell_command([*line, "--json"], recorded(fixture)))


def test_regs_json() -> None:
    data = json_of(["regs"], "lhv-good-amd64")
    assert isinstance(data, dict)
    assert data["mode"] == "long"
    assert data["ip"] == "0x102092"
    assert data["gprs"]["rsp"] == "0x10efc0"
    assert data["flags_decoded"]["pf"] == 1


def test_sregs_json() -> None:
    data = json_of(["sregs"], "lhv-no-ltr-amd64")
    assert isinstance(data, dict)
    assert data["tr_never_loaded"] is True
    assert data["segments"]["tr"]["flags"] == "0x8b00"
    assert data["segments"]["tr"]["decoded"]["type_name"] == "64-bit TSS (busy)"
    assert data["segments"]["cs"]["decoded"]["l"] == 1
    assert data["gdtr"] == {"base": "0x103730", "limit": "0x3f"}


def test_cregs_json() -> None:
    data = json_of(["cregs"], "lhv-good-i386")
    assert isinstance(data, dict)
    assert data["cr0"]["value"] == "0x80010011"
    assert data["cr0"]["decoded"]["wp"] == 1
    assert data["cr3"] == {"value": "0x10b000"}


def test_gdt_and_idt_json() -> None:
    gdt = json_of(["gdt"], "lhv-good-amd64")
    assert isinstance(gdt, dict)
    kinds = [e["kind"] for e in gdt["entries"]]
    assert kinds == ["null", "code", "code", "data", "system", "second-half", "code", "data"]
    assert gdt["entries"][4]["fields"]["base"] == 0x111000
    idt = json_of(["idt", "0x22"], "lhv-good-amd64")
    assert isinstance(idt, dict)
    assert len(idt["entries"]) == 1
    assert idt["entries"][0]["fields"]["type_name"] == "64-bit interrupt gate"
    every = json_of(["idt", "all"], "pebbles")
    assert isinstance(every, dict)
    assert len(every["entries"]) == 256
    assert [e["vector"] for e in every["entries"] if e["kind"] == "gate"] == [8]


def test_tss_pic_lapic_json() -> None:
    tss = json_of(["tss"], "lhv-good-amd64")
    assert isinstance(tss, dict)
    assert tss["fields"]["rsp0"] == 0x10F000 and tss["fields"]["ist1"] == 0x112070
    no_tss = json_of(["tss"], "lhv-no-ltr-amd64")
    assert no_tss == {
        "tr": {"selector": "0x0"},
        "unavailable": "TR was never loaded (null selector)",
    }
    pic = json_of(["pic"], "lhv-pic-unremapped-amd64")
    assert isinstance(pic, dict)
    assert pic["master"]["irq_base"] == "0x8"
    lapic = json_of(["lapic"], "lhv-good-amd64")
    assert isinstance(lapic, dict)
    assert lapic["lvt_timer"] == "0x20022"


def test_pt_without_page_tables_in_snapshot() -> None:
    data = json_of(["pt", "0x102092"], "lhv-good-amd64")
    assert isinstance(data, dict)
    assert data["paging"] == "4level"
    assert data["physical"] is None
    assert "PML4E at 0x104000 not readable" in data["fault"]


def test_pt_with_paging_off_is_identity() -> None:
    data = json_of(["pt", "0x100950"], "pebbles")
    assert isinstance(data, dict)
    assert data["paging"] is None and data["physical"] == "0x100950"


@pytest.mark.parametrize(
    ("line", "fixture", "message"),
    [
        (["gdt", "0x100"], "pebbles", "beyond the 10 slots read"),
        (["idt", "300"], "pebbles", "not 0..255"),
        (["idt", "zz"], "pebbles", "not a number"),
        (["lapic"], "pebbles", "no local APIC state"),
    ],
)
def test_view_errors(line: list[str], fixture: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        run_shell_command(line, recorded(fixture))


def real_mode_at_reset() -> Snapshot:
    """The CPU at reset (GDTR and IDTR base 0, limit 0xffff) over 64 KiB of zeros."""
    from lhvdbg.state.snapshot import MemoryRegion
    from lhvdbg.x86.hmp import parse_info_registers

    hmp = SNAPSHOTS.parent / "hmp" / "registers-real-reset.txt"
    return Snapshot(
        arch="amd64",
        cpu=parse_info_registers(hmp.read_text()),
        memory=(MemoryRegion(0, bytes(0x10000), "low"),),
        provenance=recorded("pebbles").provenance,
    )


def test_gdt_and_idt_in_real_mode(golden: Golden) -> None:
    real = real_mode_at_reset()
    note = "real mode: the CPU does not use the GDT/IDT — IDTR is the real-mode IVT"
    text = run_shell_command(["gdt"], real)
    golden("views/gdt-real-reset.txt", text)
    assert text.startswith(note)
    assert "1-8191   0x0008-0xfff8   8191 empty" in text
    assert len(text.splitlines()) == 6  # note, title, header, rule, null, one run
    idt = run_shell_command(["idt", "all"], real)
    assert idt.startswith(note)
    assert "0x00-0xff" in idt and "256 empty gates" in idt
    assert "(no gates to show)" in run_shell_command(["idt"], real)
    data = json.loads(run_shell_command(["gdt", "--json"], real))
    assert data["note"].startswith(note) and data["limit"] == "0xffff"
    assert len(data["entries"]) == 8192  # JSON stays complete
    assert [e["kind"] for e in data["entries"][:2]] == ["null", "empty"]
    data = json.loads(run_shell_command(["idt", "all", "--json"], real))
    assert len(data["entries"]) == 256 and data["entries"][0]["kind"] == "not-present"
    assert "note" not in json_of(["gdt"], "lhv-good-amd64")  # type: ignore[operator]


def test_view_without_target() -> None:
    cmd = load_all().get("regs")
    with pytest.raises(UsageError, match="no target"):
        cmd.run(cmd.parser().parse_args([]), Context(stdout=io.StringIO()))


# --- the CLI commands show and diff -----------------------------------------------------


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["--no-color", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_show_one_view_is_the_shell_view(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(["show", str(SNAPSHOTS / "lhv-good-amd64.json"), "pic"], capsys)
    assert code == 0
    # the CLI renders at the pipe width (160), as the shell test does
    shell = run_shell_command(["pic"], recorded("lhv-good-amd64"))
    assert [line.split() for line in out.splitlines()] == [
        line.split() for line in shell.splitlines()
    ]


def test_show_all(golden: Golden, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(["show", "pebbles"], capsys)
    assert code == 0 and err == ""
    golden("views/show-pebbles.txt", out)
    assert "lapic: no local APIC state (not captured)" in out


def test_show_all_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(["show", str(SNAPSHOTS / "lhv-good-i386.json"), "--json"], capsys)
    data = json.loads(out)
    assert code == 0
    assert set(data) == {"regs", "sregs", "cregs", "gdt", "idt", "tss", "pic", "lapic"}
    assert data["sregs"]["segments"]["tr"]["selector"] == "0x18"


def test_show_bad_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(["show", str(SNAPSHOTS / "bad" / "wrong-version.json")], capsys)
    assert code == 1 and out == ""
    assert err.count("\n") == 1
    assert "format_version: 2 is not supported" in err


def test_diff_golden(
    golden: Golden, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Relative names: the output (wrapped to a width) must not depend on the checkout path.
    monkeypatch.chdir(SNAPSHOTS)
    code, out, _ = cli(["diff", "lhv-good-amd64.json", "lhv-no-ltr-amd64.json"], capsys)
    assert code == 0
    golden("views/diff-good-no-ltr.txt", out)
    assert "cpu.segments.tr.selector" in out


def test_diff_json_against_reference(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(["diff", "pebbles", str(SNAPSHOTS / "lhv-good-i386.json"), "--json"], capsys)
    data = json.loads(out)
    assert code == 0
    assert data["count"] == len(data["differences"])
    by_path = {d["path"]: d for d in data["differences"]}
    assert by_path["cpu.segments.tr.selector"] == {
        "path": "cpu.segments.tr.selector",
        "a": "0x8",
        "b": "0x18",
        "meaning": "visible selector",
    }
    assert not any(p.startswith("cpu.gprs") for p in by_path)


def test_diff_identical(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(SNAPSHOTS / "lhv-good-amd64.json")
    code, out, _ = cli(["diff", path, path], capsys)
    assert code == 0
    assert out.rstrip().endswith("no differences between A and B")
