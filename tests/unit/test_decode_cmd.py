"""``lhvdbg decode``: input forms, JSON fields, human tables, one-line errors (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lhvdbg.cli import main


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main(["decode", *argv, "--json"]) == 0
    out: dict[str, object] = json.loads(capsys.readouterr().out)
    return out


def _error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(["decode", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lhvdbg: ")
    return lines[0]


def test_pebbles_tss_descriptor_as_words(capsys: pytest.CaptureFixture[str]) -> None:
    d = _json(capsys, "descriptor", "0x09500067", "0x00008910")
    assert (d["base"], d["limit"], d["type"], d["s"], d["dpl"], d["present"]) == (
        0x100950,
        0x67,
        9,
        0,
        0,
        1,
    )
    assert (d["l"], d["db"], d["g"]) == (0, 0, 0)
    assert d["type_name"] == "32-bit TSS (available)" and d["mode"] == "protected"


def test_descriptor_input_forms_agree(capsys: pytest.CaptureFixture[str]) -> None:
    forms = [
        ["0x0000891009500067"],
        ["0x09500067", "0x00008910"],
        ["67", "00", "50", "09", "10", "89", "00", "00"],
        ["6700500910890000"],
        ["0x09500067,0x00008910"],
    ]
    raws = {_json(capsys, "descriptor", *form)["raw"] for form in forms}
    assert raws == {0x0000891009500067}


def test_pebbles_df_gate(capsys: pytest.CaptureFixture[str]) -> None:
    g = _json(capsys, "gate", "0x001009b8", "0x00108e00")
    assert (g["offset"], g["selector"], g["type"], g["dpl"], g["present"], g["ist"]) == (
        0x1009B8,
        0x10,
        0xE,
        0,
        1,
        0,
    )
    assert g["type_name"] == "32-bit interrupt gate"


def test_human_output_is_a_table_with_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--no-color", "decode", "gate", "0x001009b8", "0x00108e00"]) == 0
    out = capsys.readouterr().out
    assert "offset" in out and "0x1009b8" in out and "32-bit interrupt gate" in out
    assert out.rstrip().endswith("32-bit interrupt gate -> 0x0010:0x1009b8, DPL 0, present")


def test_long_mode_forms(capsys: pytest.CaptureFixture[str]) -> None:
    # 64-bit gate as two 64-bit values, then as four words
    two = _json(capsys, "gate", "0x80008e0200081234", "0xffffffff")
    four = _json(capsys, "gate", "0x00081234", "0x80008e02", "0xffffffff", "0", "--mode", "long")
    assert two == four
    assert (two["offset"], two["ist"], two["type_name"], two["mode"]) == (
        0xFFFFFFFF80001234,
        2,
        "64-bit interrupt gate",
        "long",
    )
    tss = _json(capsys, "descriptor", "0x00008b1000000067", "0x0")
    assert tss["type_name"] == "64-bit TSS (busy)" and tss["base"] == 0x100000
    code = _json(capsys, "descriptor", "0x00af9a000000ffff", "--mode", "long")
    assert (code["l"], code["db"], code["limit_bytes"]) == (1, 0, 0xFFFFFFFF)
    half = _json(capsys, "descriptor", "0x00008b1000000067", "--mode", "long")
    assert "16-byte descriptor" in str(half["notes"])


def test_selector_and_error_codes(capsys: pytest.CaptureFixture[str]) -> None:
    s = _json(capsys, "selector", "0x2b")
    assert (s["index"], s["ti"], s["rpl"]) == (5, 0, 3)
    e = _json(capsys, "error-code", "0x42", "--vector", "13")
    assert (e["ext"], e["idt"], e["ti"], e["index"]) == (0, 1, 0, 8)
    assert e["summary"] == "IDT vector 0x08 (#DF)"
    pf = _json(capsys, "error-code", "2", "--vector", "14")
    assert (pf["p"], pf["wr"], pf["us"], pf["wr_name"]) == (0, 1, 0, "write")
    assert _json(capsys, "error-code", "0x18")["index"] == 3  # default: selector format


def test_tss_blob_and_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    body = bytes(8) + bytes([0x18, 0]) + bytes(0x66 - 10) + bytes([0x68, 0])
    t = _json(capsys, "tss32", body.hex())
    assert (t["ss0"], t["io_map_base"]) == (0x18, 0x68)
    binary = tmp_path / "tss.bin"
    binary.write_bytes(body)
    assert _json(capsys, "tss32", f"@{binary}")["ss0"] == 0x18
    text = tmp_path / "tss.txt"
    text.write_text(" ".join(f"{b:02x}" for b in body) + "\n")
    assert _json(capsys, "tss32", f"@{text}")["io_map_base"] == 0x68
    short = _json(capsys, "tss64", "00000000" + "00100000" + "00000000")
    assert short["rsp0"] == 0x1000 and "ist1" in short["missing"]  # type: ignore[operator]


def test_registers_and_pte(capsys: pytest.CaptureFixture[str]) -> None:
    assert _json(capsys, "eflags", "0x202")["if"] == 1
    assert _json(capsys, "cr0", "80000011")["pg"] == 1
    assert _json(capsys, "cr4", "0x20")["pae"] == 1
    assert _json(capsys, "efer", "0x500")["lma"] == 1
    assert _json(capsys, "cr3", "0x105000", "--paging", "32bit")["pd"] == 0x105000
    pde = _json(capsys, "pte", "0x2000e3", "--level", "2")
    assert (pde["layout"], pde["address"], pde["dirty"]) == ("PDE (page)", 0x200000, 1)
    pte = _json(capsys, "pte", "0x00103003", "--paging", "32bit")
    assert (pte["address"], pte["rw"], pte["present"]) == (0x103000, 1, 1)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["descriptor", "zz"], "not a hexadecimal value: 'zz'"),
        (["descriptor", "0x1", "0x2", "0x3"], "3 values"),
        (["gate", "0x001009b8", "0x00108e00", "--mode", "long"], "expected 16 bytes"),
        (["descriptor", "0x1ffffffff", "0x0", "--mode", "protected"], "only in long mode"),
        (["error-code", "0", "--vector", "3"], "vector 3 (#BP) pushes no error code"),
        (["selector", "0x10000"], "does not fit selector"),
        (["tss32", "abc"], "not a hex byte string"),
        (["tss32", "@/nonexistent/file"], "raw-bytes file not found: /nonexistent/file"),
        (["pte", "0x1", "--level", "5"], "no level 5"),
        (["eflags", "1", "2"], "takes one value, got 2"),
        (["selector", "8", "--vector", "3"], "--vector applies only to error-code"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert message in _error(capsys, *argv)
