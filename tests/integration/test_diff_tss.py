"""``lhvdbg diff-tss`` end to end on the real firmware."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lhvdbg.cli import main

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
GOOD_AMD64 = ROOT / "tests" / "fixtures" / "snapshots" / "lhv-good-amd64.json"


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["diff-tss", *args, "--json"]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def by_field(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["field"]: d for d in data["differences"]}


@pytest.mark.parametrize("reference", ["pebbles", str(GOOD_AMD64)])
def test_no_ltr_amd64_difference_does_not_matter(
    firmware_built: Path, capsys: pytest.CaptureFixture[str], reference: str
) -> None:
    data = run_json(capsys, "--variant", "no-ltr", "--reference", reference)
    fields = by_field(data)
    assert fields["tr.selector"]["actual"] == 0
    assert fields["tr.selector"]["matters"] is False
    assert not any(d["matters"] for d in data["differences"])
    assert data["tss_needed"] is False


def test_no_ltr_i386_default_reference_is_pebbles(
    firmware_built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = run_json(capsys, "--arch", "i386", "--variant", "no-ltr")
    assert data["reference"] == "pebbles" and data["reference_arch"] == "i386"
    fields = by_field(data)
    assert (fields["tr.selector"]["reference"], fields["tr.selector"]["actual"]) == (0x08, 0)
    assert not any(d["matters"] for d in data["differences"])


def test_ist_without_tss_at_the_triple_fault_matters(
    firmware_built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = run_json(
        capsys, "--variant", "ist-without-tss", "--at-df", "--reference", str(GOOD_AMD64)
    )
    fields = by_field(data)
    assert fields["tr.selector"]["matters"] is True
    assert fields["tss.ist1"]["matters"] is True
    assert data["tss_needed"] is True


def test_good_at_a_symbol_and_offline_snapshot(
    firmware_built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live = run_json(capsys, "--variant", "good", "--at", "kernel_main", "--reference", "pebbles")
    assert live["arch"] == "amd64"
    offline = run_json(capsys, "--snapshot", str(GOOD_AMD64), "--reference", "pebbles")
    assert by_field(offline)["tr.selector"]["actual"] == 0x20
    assert not any(d["matters"] for d in offline["differences"])
    assert (
        main(["--no-color", "diff-tss", "--snapshot", str(GOOD_AMD64), "--reference", "pebbles"])
        == 0
    )
    text = capsys.readouterr().out
    assert text.startswith("diff-tss: amd64 against pebbles (i386)")
    assert "the CPU needs the TSS now: no" in text


def test_bad_reference_is_an_error(
    firmware_built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["diff-tss", "--snapshot", str(GOOD_AMD64), "--reference", "nope"]) != 0
    assert capsys.readouterr().err.startswith("lhvdbg: nope: not a snapshot file nor a reference")
