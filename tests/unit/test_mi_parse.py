"""lhvdbg's MI parser: every recorded line parses as pygdbmi parses it (the shape the rest
of lhvdbg reads), C-string escapes, repeated keys; and QMP error replies keep their class."""

from __future__ import annotations

from pathlib import Path

import pytest
from pygdbmi import gdbmiparser

from lhvdbg.errors import QmpError
from lhvdbg.machine.mirecord import is_prompt, parse_line, parse_lines, parse_results, unescape
from lhvdbg.machine.qmp import qmp_failure

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "mi"
LINES = [
    (f.name, line)
    for f in sorted(FIXTURES.glob("*.mi"))
    for line in f.read_text().splitlines()
    if line.strip() and not is_prompt(line)
]


def test_there_are_recorded_lines() -> None:
    assert len(LINES) > 100


@pytest.mark.parametrize(
    ("name", "line"), LINES, ids=[f"{n}:{i}" for i, (n, _) in enumerate(LINES)]
)
def test_each_recorded_line_parses_as_pygdbmi_does(name: str, line: str) -> None:
    theirs = gdbmiparser.parse_response(line)
    ours = parse_line(line)
    assert ours is not None
    assert (ours.type, ours.message, ours.payload, ours.token) == (
        theirs["type"],
        theirs["message"],
        theirs["payload"],
        theirs.get("token"),
    )


def test_record_kinds() -> None:
    assert parse_line("(gdb) ") is None and parse_line("") is None
    rec = parse_line('12^done,value="0x102150 <kernel_main>"')
    assert rec is not None and (rec.type, rec.message, rec.token) == ("result", "done", 12)
    assert rec.payload == {"value": "0x102150 <kernel_main>"} and rec.is_result
    rec = parse_line("7^running")
    assert rec is not None and rec.payload is None and rec.message == "running"
    rec = parse_line('*stopped,reason="end-stepping-range"')
    assert rec is not None and rec.is_stopped and rec.token is None
    rec = parse_line('=thread-group-added,id="i1"')
    assert rec is not None and (rec.type, rec.message) == ("notify", "thread-group-added")
    assert [r.type for r in parse_lines('~"a"\n@"b"\n&"c"\nplain text\n')] == [
        "console",
        "target",
        "log",
        "output",
    ]


def test_c_string_escapes() -> None:
    assert unescape("plain") == "plain"
    assert unescape(r"tab\there\n") == "tab\there\n"
    assert unescape(r"\"quoted\" back\\slash") == '"quoted" back\\slash'
    assert unescape(r"\303\251t\303\251 \e[0m") == "été \033[0m"
    rec = parse_line(r'~"The target architecture is set to \"i386:x86-64\".\n"')
    assert rec is not None and rec.payload == 'The target architecture is set to "i386:x86-64".\n'
    # a quote after an escaped backslash ends the string
    assert parse_results(r'a="x\\",b="y"') == {"a": "x\\", "b": "y"}


def test_tuples_lists_and_repeated_keys() -> None:
    assert parse_results('a={b="1",b="2",b="3"},c=[]') == {"a": {"b": ["1", "2", "3"]}, "c": []}
    # a list drops the names of its results, as pygdbmi does
    assert parse_results('body=[bkpt={number="1"},bkpt={number="2"}]') == {
        "body": [{"number": "1"}, {"number": "2"}]
    }
    assert parse_results('x=[["1","2"],{}]') == {"x": [["1", "2"], {}]}
    # an unclosed string or container gives what could be read
    assert parse_results('a="1",b="unterminated') == {"a": "1", "b": "unterminated"}
    assert parse_results('a={b="1"') == {"a": {"b": "1"}}


def test_a_long_memory_read_is_one_string() -> None:
    contents = "ab" * 4096
    rec = parse_line(
        f'9^done,memory=[{{begin="0x1000",offset="0x0",end="0x2000",contents="{contents}"}}]'
    )
    assert rec is not None
    assert rec.payload["memory"][0]["contents"] == contents


def test_a_qmp_error_reply_keeps_its_class() -> None:
    reply = {
        "id": 4,
        "error": {"class": "CommandNotFound", "desc": "The command foo has not been found"},
    }
    err = qmp_failure("foo", reply)
    assert isinstance(err, QmpError)
    assert (err.error_class, err.desc) == ("CommandNotFound", "The command foo has not been found")
    assert str(err) == "QMP foo failed: CommandNotFound: The command foo has not been found"
    assert err.context["command"] == "foo"
    generic = qmp_failure("human-monitor-command", {"error": {"desc": "no class"}})
    assert generic.error_class == "GenericError" and generic.desc == "no class"
