"""The scenario loader: the model it builds, and one-line errors with file, line, field."""

from __future__ import annotations

from pathlib import Path

import pytest

from lhvdbg.errors import ScenarioError
from lhvdbg.scenario.loader import collect_files, load_scenario, parse_scenario
from lhvdbg.scenario.toml_lines import format_path, key_lines, line_of

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "scenarios"

GOOD = """\
name = "pic left at the BIOS mapping"
description = \"\"\"
The timer lands on vector 8.
step = "not a key"
\"\"\"
arch = "amd64"
variant = "pic-unremapped"
timeout = 20
tags = ["df", "pic"]

[[step]]
break = "kernel_main"

[[step]]
continue = true
timeout = 5

[[step.expect]]
path = "stop.reason"
equals = "breakpoint"

[[step]]
stepi = 3
note = "three instructions"

[[step]]
run = "idt 8 --json"
save_as = "idt8"

[[step]]
expect = [
  { path = "pic.master.irq_base", equals = 0x08 },
  { path = "serial", contains = "LHV" },
]

[[expect]]
path = "idt[0x20].present"
equals = true
message = "the timer gate is installed"
"""


def test_good_file_builds_the_model() -> None:
    s = parse_scenario(GOOD, name="good.toml", path=Path("/x/good.toml"))
    assert s.name == "pic left at the BIOS mapping"
    assert s.arch == "amd64" and s.variant == "pic-unremapped" and s.kernel is None
    assert s.accel == "tcg" and s.timeout == 20.0 and s.tags == ("df", "pic")
    assert "vector 8" in s.description
    assert [st.action for st in s.steps] == ["break", "continue", "stepi", "run", "expect"]
    brk, cont, step, run, exp = s.steps
    assert brk.arg == "kernel_main" and brk.origin.line == 12
    assert cont.arg is True and cont.timeout == 5.0 and cont.origin.line == 15
    assert [(e.path, e.op, e.value) for e in cont.expects] == [
        ("stop.reason", "equals", "breakpoint")
    ]
    assert cont.expects[0].origin.line == 18
    assert step.arg == 3 and step.note == "three instructions"
    assert run.arg == "idt 8 --json" and run.save_as == "idt8"
    assert [(e.path, e.op, e.value) for e in exp.expects] == [
        ("pic.master.irq_base", "equals", 8),
        ("serial", "contains", "LHV"),
    ]
    assert exp.origin.line == 31
    (final,) = s.expects
    assert final.path == "idt[0x20].present" and final.value is True
    assert final.message == "the timer gate is installed" and final.origin.line == 36
    assert s.label == "good"


def test_kernel_path_is_relative_to_the_file() -> None:
    s = parse_scenario(
        'arch = "i386"\nkernel = "../k.elf"\n[[expect]]\npath = "mode"\nequals = "protected"\n',
        name="d/s.toml",
        path=Path("/a/d/s.toml"),
    )
    assert s.kernel == Path("/a/d/../k.elf") and s.variant is None


def test_stepi_true_means_one_and_delete_number() -> None:
    s = parse_scenario(
        'arch = "amd64"\nvariant = "good"\n[[step]]\nstepi = true\n[[step]]\ndelete = 2\n'
        "[[step]]\nbreak = 0x100000\n",
        name="s.toml",
    )
    assert [(st.action, st.arg) for st in s.steps] == [
        ("stepi", 1),
        ("delete", 2),
        ("break", 0x100000),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # syntax: tomllib's line and column
        ('arch = "amd64"\nvariant = \n', "bad.toml:2:11: TOML syntax: "),
        # top level
        ('variant = "good"\n[[step]]\ncontinue = true\n', "bad.toml: missing key 'arch'"),
        ('arch = "arm"\nvariant = "good"\n', "bad.toml:1: arch: unknown architecture 'arm'"),
        ('arch = "amd64"\n[[step]]\ncontinue = true\n', "bad.toml: give exactly one of"),
        (
            'arch = "amd64"\nvariant = "good"\naccel = "hvf"\n[[step]]\ncontinue = true\n',
            "bad.toml:3: accel: unknown accelerator 'hvf'",
        ),
        (
            'arch = "amd64"\nvariant = "good"\ntimeout = -1\n[[step]]\ncontinue = true\n',
            "bad.toml:3: timeout: expected a positive number of seconds, got -1",
        ),
        (
            'arch = "amd64"\nvariant = "good"\nvarient = "x"\n',
            "bad.toml:3: varient: unknown key",
        ),
        ('arch = "amd64"\nvariant = "good"\n', "bad.toml: no steps and no assertions"),
        # steps
        (
            'arch = "amd64"\nvariant = "good"\n[[step]]\ncontinue = true\n\n'
            '[[step]]\nstepi = "two"\n',
            "bad.toml:7: step[2].stepi: expected a positive integer, got 'two'",
        ),
        (
            'arch = "amd64"\nvariant = "good"\n[[step]]\nbreak = "a"\ncontinue = true\n',
            "bad.toml:3: step[1]: one action per step, found break, continue",
        ),
        (
            'arch = "amd64"\nvariant = "good"\n[[step]]\ntimeout = 3\n',
            "bad.toml:3: step[1]: no action",
        ),
        (
            'arch = "amd64"\nvariant = "good"\n[[step]]\ncontinue = false\n',
            "bad.toml:4: step[1].continue: expected true, got false",
        ),
        (
            'arch = "amd64"\nvariant = "good"\n[[step]]\ncontinue = true\nsave_as = "x"\n',
            "bad.toml:5: step[1].save_as: only a 'run' step can keep its output",
        ),
        (
            'arch = "amd64"\nvariant = "good"\n[[step]]\nrun = "regs"\nsave_as = "1x"\n',
            "bad.toml:5: step[1].save_as: not an identifier: '1x'",
        ),
        (
            'arch = "amd64"\nvariant = "good"\n[[step]]\nwait_serial = ""\n',
            "bad.toml:4: step[1].wait_serial: must not be empty",
        ),
        # assertions
        (
            'arch = "amd64"\nvariant = "good"\n[[expect]]\npath = "tr.selector"\n',
            "bad.toml:3: expect[1]: give exactly one operator",
        ),
        (
            'arch = "amd64"\nvariant = "good"\n[[expect]]\npath = "tr..selector"\nequals = 0\n',
            "bad.toml:4: expect[1].path: bad field path 'tr..selector'",
        ),
        (
            'arch = "amd64"\nvariant = "good"\n[[expect]]\nequals = 0\n',
            "bad.toml:3: expect[1]: missing key 'path'",
        ),
        (
            'arch = "amd64"\nvariant = "good"\n[[expect]]\npath = "a"\nmatches = "("\n',
            "bad.toml:5: expect[1].matches: bad regular expression",
        ),
        (
            'arch = "amd64"\nvariant = "good"\n[[expect]]\npath = "a"\ngt = "big"\n',
            "bad.toml:5: expect[1].gt: expected a number, got 'big'",
        ),
        (
            'arch = "amd64"\nvariant = "good"\n[[step]]\ncontinue = true\n'
            '[[step.expect]]\npath = "a"\nequals = 1\n[[step.expect]]\npath = "b"\nequls = 1\n',
            "bad.toml:10: step[1].expect[2].equls: unknown key",
        ),
        (
            'arch = "amd64"\nvariant = "good"\n[[step]]\n'
            'expect = [{ path = "a", equals = 1 }, 3]\n',
            "bad.toml:4: step[1].expect[2]: expected a table, got a number",
        ),
    ],
)
def test_malformed_files_give_file_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, name="bad.toml")
    message = str(info.value)
    assert message.startswith(expected), message
    assert "\n" not in message
    assert info.value.exit_code == 2


def test_load_scenario_reports_missing_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"scenario file not found: .*nope\.toml"):
        load_scenario(tmp_path / "nope.toml")
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'name = "caf\xe9"\n')
    with pytest.raises(ScenarioError, match=r"latin1\.toml: not UTF-8 text"):
        load_scenario(bad)


def test_fixture_files() -> None:
    """The checked-in malformed fixtures fail with their documented line."""
    with pytest.raises(ScenarioError, match=r"bad-step-type\.toml:9: step\[2\]\.ticks: "):
        load_scenario(FIXTURES / "bad-step-type.toml")
    with pytest.raises(ScenarioError, match=r"bad-syntax\.toml:6:\d+: TOML syntax"):
        load_scenario(FIXTURES / "bad-syntax.toml")


def test_collect_files(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    for name in ("a.toml", "b/c.toml", "b/readme.md"):
        (tmp_path / name).write_text("")
    assert collect_files([tmp_path]) == [tmp_path / "a.toml", tmp_path / "b" / "c.toml"]
    with pytest.raises(ScenarioError, match="no such scenario file or directory"):
        collect_files([tmp_path / "missing"])


def test_key_lines_follows_nested_arrays_and_skips_multiline_strings() -> None:
    text = (
        'a = 1\ns = """\nb = 2\n"""\n[t]\nc = 3\n[[x]]\nd = 4\n[[x.y]]\ne = 5\n'
        "[[x]]\n[[x.y]]\n[[x.y]]\nf = 6\n"
    )
    lines = key_lines(text)
    assert lines[("a",)] == 1
    assert ("b",) not in lines
    assert lines[("t", "c")] == 6
    assert lines[("x", 0, "d")] == 8
    assert lines[("x", 0, "y", 0, "e")] == 10
    assert lines[("x", 1, "y", 1, "f")] == 14
    assert line_of(lines, ("x", 1, "y", 1, "g")) == 13
    assert line_of(lines, ("zzz",)) == 0
    assert format_path(("x", 1, "y", 0, "f")) == "x[2].y[1].f"


def test_options_are_checked() -> None:
    s = parse_scenario(
        'arch = "amd64"\nvariant = "good"\n[options]\nmemory_mb = 64\n'
        'extra_args = ["-smp", "1"]\n[[step]]\ncontinue = true\n',
        name="o.toml",
    )
    assert s.options == {"memory_mb": 64, "extra_args": ["-smp", "1"]}
    with pytest.raises(ScenarioError, match=r"^o\.toml:4: options\.memory_mb: expected int"):
        parse_scenario(
            'arch = "amd64"\nvariant = "good"\n[options]\nmemory_mb = "64"\n'
            "[[step]]\ncontinue = true\n",
            name="o.toml",
        )
    with pytest.raises(ScenarioError, match=r"^o\.toml:4: options\.smp: unknown key"):
        parse_scenario(
            'arch = "amd64"\nvariant = "good"\n[options]\nsmp = 2\n[[step]]\ncontinue = true\n',
            name="o.toml",
        )
