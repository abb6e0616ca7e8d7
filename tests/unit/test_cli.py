"""The command line itself: the command index agrees with the registry, usage errors are
one line naming the argument, negative numbers are values, start-up imports little, and
every file input is a bounded read of a regular file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lhvdbg.cli import OPTIONS, main, quick_help
from lhvdbg.commands.index import COMMANDS
from lhvdbg.commands.registry import index_entries, load_all
from lhvdbg.errors import DecodeError, KernelError, ScenarioError, SnapshotError
from lhvdbg.files import KERNEL, RAW_BYTES, SCENARIO, SNAPSHOT, FileKind, read_bytes, read_text
from lhvdbg.scenario.loader import load_scenario
from lhvdbg.state.elf import inspect_kernel
from lhvdbg.state.snapshot import load_snapshot

ROOT = Path(__file__).resolve().parents[2]


def test_the_index_is_the_registry() -> None:
    """commands/index.py (what --help and the CLI read) says what the modules register;
    regenerate it with write_index() when this fails."""
    assert list(COMMANDS) == index_entries(load_all())


def test_quick_help_lists_every_cli_command_and_option() -> None:
    text = quick_help(COMMANDS, width=1000)
    cli = [e for e in COMMANDS if "cli" in e.where]
    assert len(cli) >= 10
    for entry in cli:
        assert f"    {entry.name}  " in text and entry.summary in text
    for entry in COMMANDS:
        if "cli" not in entry.where:  # shell-only commands are not offered
            assert f"    {entry.name}  " not in text
    for flags, help_text in OPTIONS:
        assert ", ".join(flags) in text and help_text in text


def test_quick_help_at_80_columns_wraps_each_summary_under_itself() -> None:
    text = quick_help(COMMANDS, width=80)
    lines = text.splitlines()
    assert all(len(line) <= 80 and line == line.rstrip() for line in lines)
    column = lines[lines.index("commands:") + 2].index("boot the kernel")
    summaries: dict[str, str] = {}
    name = ""
    for line in lines:
        if line.startswith("    ") and line[4] != " ":  # a command or an option
            name = line[4:column].strip()
            summaries[name] = line[column:]
        elif name and line.startswith(" " * column) and line.strip():  # its continuation
            summaries[name] += " " + line[column:]
        else:
            name = ""
    for entry in (e for e in COMMANDS if "cli" in e.where):
        assert summaries[entry.name] == entry.summary
    assert any(line.startswith(" " * column) for line in lines)  # something did wrap


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lhvdbg", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["decode"], "lhvdbg: decode: the following arguments are required: kind, VALUE"),
        (["decode", "gate"], "lhvdbg: decode: the following arguments are required: VALUE"),
        (["decode", "descriptor", "-0x10"], "lhvdbg: VALUE -0x10: negative; give the raw bits"),
        (["--frob"], "lhvdbg: unrecognized arguments: --frob"),
        (["frobnicate"], "lhvdbg: argument COMMAND: invalid choice: 'frobnicate'"),
        (["run", "--memory", "many"], "lhvdbg: run: argument --memory: invalid int value"),
    ],
)
def test_usage_errors_are_one_line_naming_the_argument(argv: list[str], line: str) -> None:
    done = _run(*argv)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(line), done.stderr


def test_negative_numbers_are_values_not_options(capsys: pytest.CaptureFixture[str]) -> None:
    """``-0x10`` reaches the command as VALUE (which says what is wrong with it), and a
    negative count reaches its option."""
    assert main(["decode", "selector", "-0x10"]) == 2
    assert capsys.readouterr().err == (
        "lhvdbg: VALUE -0x10: negative; give the raw bits in hexadecimal\n"
    )


def test_version_and_help_import_no_command_module() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from lhvdbg.cli import main\n"
        "for argv in (['--version'], ['--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        main(argv)\n"
        "print(sorted(m for m in sys.modules if m.startswith(('lhvdbg', 'argparse'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    loaded = json.loads(done.stdout.replace("'", '"'))
    assert loaded == [
        "lhvdbg",
        "lhvdbg.cli",
        "lhvdbg.commands",
        "lhvdbg.commands.entry",
        "lhvdbg.commands.index",
        "lhvdbg.signals",
    ]


def test_main_gives_sigterm_back_to_its_caller() -> None:
    before = signal.getsignal(signal.SIGTERM)
    assert main(["--version"]) == 0
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_inside_a_command_is_one_line_and_143(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lhvdbg.commands import decode

    def terminated(*args: object) -> int:
        os.kill(os.getpid(), signal.SIGTERM)  # handled: raises Terminated right here
        raise AssertionError("SIGTERM did not interrupt")

    monkeypatch.setattr(decode, "parse_hex", terminated)
    code = main(["decode", "selector", "0x10"])
    assert code == 143
    assert capsys.readouterr().err == "lhvdbg: terminated\n"


# --- bounded reads -------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
@pytest.mark.parametrize(
    ("read", "error", "kind"),
    [
        (inspect_kernel, KernelError, "kernel"),
        (load_snapshot, SnapshotError, "snapshot"),
        (load_scenario, ScenarioError, "scenario file"),
        (lambda p: read_bytes(p, RAW_BYTES), DecodeError, "raw-bytes file"),
    ],
)
def test_devices_are_refused_before_a_byte_is_read(
    device: str, read: object, error: type[Exception], kind: str
) -> None:
    assert callable(read)
    with pytest.raises(error) as info:
        read(device)
    assert str(info.value).startswith(f"{device}: not a regular file (a {kind} is a regular")
    assert "of at most" in str(info.value)


def test_fifo_and_directory_are_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # no writer: opening must not wait for one
    with pytest.raises(SnapshotError, match=r"fifo: not a regular file"):
        load_snapshot(fifo)
    with pytest.raises(KernelError, match="is a directory, not a kernel"):
        inspect_kernel(tmp_path)


def test_size_limit_is_checked_before_reading_and_named(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    with big.open("wb") as f:  # sparse: 65 MiB of nothing on disk
        f.truncate(SNAPSHOT.limit + 1024 * 1024)
    with pytest.raises(SnapshotError) as info:
        load_snapshot(big)
    assert str(info.value) == f"{big}: 65 MiB is over the 64 MiB limit for a snapshot"
    small = FileKind("test file", 4, ScenarioError)
    (tmp_path / "five").write_bytes(b"12345")
    with pytest.raises(ScenarioError, match="5 bytes is over the 4 bytes limit for a test"):
        read_text(tmp_path / "five", small)
    assert read_bytes(tmp_path / "five", KERNEL, head=2) == b"12"
    assert SCENARIO.limit_text == "1 MiB" and RAW_BYTES.limit_text == "64 KiB"


def test_one_command_loaded_still_finds_the_others() -> None:
    """The CLI imports only its command's module; a command that asks the registry for
    another (the shell, until-df running diagnose) still finds it."""
    code = (
        "from lhvdbg.commands.index import COMMANDS\n"
        "from lhvdbg.commands.registry import REGISTRY, load_command\n"
        "load_command('shell', COMMANDS)\n"
        "print(REGISTRY.get('diagnose').name, 'until-df' in REGISTRY,"
        " len(REGISTRY.offered_in('shell')) > 20)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert done.stdout.split() == ["diagnose", "True", "True"]


def test_the_program_ends_with_all_its_output_and_its_status(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """As ``python -m lhvdbg`` the process ends without the interpreter's tear-down
    (cli._exit_now): what it printed is all there, in a pipe, with Python's own buffering
    (no PYTHONUNBUFFERED), and its status is kept."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}

    def program(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lhvdbg", *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=60,
            check=False,
        )

    assert program("--version").stdout.startswith("lhvdbg ")  # a print() left in the buffer
    snapshot = str(ROOT / "tests" / "fixtures" / "snapshots" / "long-tcg.json")
    for args in (["decode", "selector", "0x10", "--json"], ["show", snapshot, "--json"]):
        assert main(args) == 0
        in_process = capsys.readouterr().out
        done = program(*args)
        assert done.returncode == 0 and done.stderr == ""
        assert json.loads(done.stdout) == json.loads(in_process)
    refused = program("show", snapshot + ".missing")
    assert refused.returncode == 1 and refused.stderr.startswith("lhvdbg: ")
