"""``lhvdbg scenario`` without a machine: listing, malformed files, JUnit XML, results."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lhvdbg.cli import main
from lhvdbg.scenario.junit import junit_xml, write_junit
from lhvdbg.scenario.runner import ScenarioResult

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "scenarios"
SHIPPED = ROOT / "scenarios"


def test_list_shipped_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenario", "list", str(SHIPPED), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    labels = {row["label"] for row in rows}
    # the LHV story on both architectures
    for arch in ("amd64", "i386"):
        assert {f"{arch}-1-pic-unremapped", f"{arch}-2-null-tr-vs-pebbles"} <= labels
        assert f"{arch}-3-fixed-timer-ticks" in labels
    # at least one scenario per firmware variant and architecture
    built = {
        (elf.parent.name, elf.stem.removeprefix("lhv-"))
        for elf in (ROOT / "firmware" / "build").glob("*/lhv-*.elf")
    }
    declared = {(row["arch"], row["kernel"]) for row in rows}
    assert built <= declared, f"variants without a scenario: {sorted(built - declared)}"
    assert all(row["assertions"] > 0 for row in rows)


def test_list_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["--no-color", "scenario", "list", str(SHIPPED / "amd64-1-pic-unremapped.toml")]) == 0
    )
    out = capsys.readouterr().out
    assert "amd64-1-pic-unremapped" in out and "pic-unremapped" in out and "tcg" in out


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "bad-step-type.toml",
            "bad-step-type.toml:9: step[2].ticks: expected a positive integer, got 'three'",
        ),
        ("bad-syntax.toml", "bad-syntax.toml:6:20: TOML syntax: Illegal character"),
    ],
)
def test_malformed_file_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], name: str, message: str
) -> None:
    assert main(["scenario", "run", str(FIXTURES / name)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lhvdbg: ") and message in err
    assert err.count("\n") == 1


def test_no_scenarios(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["scenario", "run", str(tmp_path)]) == 2
    assert "lhvdbg: no scenarios in " in capsys.readouterr().err
    assert main(["scenario", "run", "-j", "0", str(SHIPPED)]) == 2
    assert "-j must be at least 1" in capsys.readouterr().err


def _results() -> list[ScenarioResult]:
    return [
        ScenarioResult("ok", "a-ok", "scenarios/a-ok.toml", "pass", 0.5, accel="tcg"),
        ScenarioResult(
            "bad",
            "b-bad",
            "scenarios/b-bad.toml",
            "fail",
            0.25,
            accel="tcg",
            failures=["pic.master.irq_base: expected equals 0x20, actual 0x8 (b.toml:10)"],
            where="b.toml:10",
            log="registers ...\n",
            serial="LHV\x1b[0m sti\x00\n",
        ),
        ScenarioResult("err", "c-err", "scenarios/c-err.toml", "error", 0.1, failures=["boom"]),
    ]


def test_junit_xml_is_valid_and_complete(tmp_path: Path) -> None:
    path = tmp_path / "out.xml"
    write_junit(_results(), path)
    root = ET.parse(path).getroot()
    assert root.tag == "testsuite"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "1", "1")
    assert root.get("time") == "0.850"
    cases = root.findall("testcase")
    assert [c.get("name") for c in cases] == ["a-ok", "b-bad", "c-err"]
    assert cases[0].find("failure") is None and cases[0].find("error") is None
    failure = cases[1].find("failure")
    assert failure is not None
    assert failure.get("message") == (
        "pic.master.irq_base: expected equals 0x20, actual 0x8 (b.toml:10)"
    )
    serial = cases[1].find("system-err")
    assert serial is not None and serial.text is not None
    assert "\x1b" not in serial.text and "\x00" not in serial.text  # not XML characters
    error = cases[2].find("error")
    assert error is not None and error.get("message") == "boom"
    assert junit_xml([]).count("<testsuite") == 1


def test_result_round_trip() -> None:
    for result in _results():
        assert ScenarioResult.from_dict(result.to_dict()) == result


def test_host_access_is_reported_in_junit_json_and_the_result_line() -> None:
    """A run with --allow-host says so: JUnit properties (before the failure element),
    the JSON fields, and the result line with one 'allowed:' line per use."""
    from lhvdbg.ui.scenarios import result_line

    use = "h.toml:4: gdb 'shell' is not an inspection or breakpoint command"
    result = ScenarioResult(
        "h", "h", "h.toml", "fail", 1.0, failures=["x"], allow_host=True, host_access=[use]
    )
    case = ET.fromstring(junit_xml([result])).find("testcase")
    assert case is not None
    assert [child.tag for child in case] == ["properties", "failure"]
    properties = [(p.get("name"), p.get("value")) for p in case.iter("property")]
    assert properties == [("allow-host", "true"), ("host-access", use)]
    assert ScenarioResult.from_dict(result.to_dict()) == result
    assert result.to_dict()["host_access"] == [use]
    line = result_line("pass", "h", 1.0, "tcg", "h.toml", [], [use])
    assert str(line).splitlines() == [
        "PASS  h  1.0 s tcg  host access allowed (1 use)",
        f"      allowed: {use}",
    ]
    plain = result_line("pass", "h", 1.0, "tcg", "h.toml", [])
    assert "host access" not in str(plain)
