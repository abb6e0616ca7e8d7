"""``lhvdbg completion bash|zsh``: the script is made from the registry and works in a real
bash (and zsh, when installed): sourced, registered, and answering with the right words."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lhvdbg.cli import build_parser
from lhvdbg.commands.completion import GLOBAL_OPTIONS, bash_script, command_specs, zsh_script
from lhvdbg.commands.registry import load_all

ROOT = Path(__file__).resolve().parent.parent.parent
LHVDBG = [sys.executable, "-m", "lhvdbg"]

_ASK = """
ask() {{ COMP_WORDS=("$@"); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 )); COMPREPLY=(); _lhvdbg;
        echo "${{COMPREPLY[*]}}"; }}
{calls}
"""


def _script(shell: str) -> str:
    done = subprocess.run(
        [*LHVDBG, "completion", shell], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return done.stdout


@pytest.fixture(scope="module")
def bash_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("completion") / "lhvdbg.bash"
    path.write_text(_script("bash"))
    return path


def _bash(script: Path, calls: str) -> list[str]:
    code = f"source {script}\n" + _ASK.format(calls=calls)
    done = subprocess.run(["bash", "-c", code], capture_output=True, text=True, check=True)
    assert done.stderr == ""
    return done.stdout.splitlines()


def test_sourcing_the_script_registers_the_function_in_bash() -> None:
    done = subprocess.run(
        ["bash", "-c", f"source <({sys.executable} -m lhvdbg completion bash); complete -p lhvdbg"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "complete -F _lhvdbg lhvdbg"
    assert done.stderr == ""


def test_every_cli_command_is_offered_at_the_top(bash_file: Path) -> None:
    (words,) = _bash(bash_file, 'ask lhvdbg ""')
    expected = {c.name for c in load_all().offered_in("cli")}
    assert set(words.split()) == expected
    assert {"doctor", "completion", "break-on-df", "show"} <= expected


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("lhvdbg sh", "shell show"),
        ("lhvdbg --no-color br", "break-on-df"),
        ("lhvdbg -", " ".join(GLOBAL_OPTIONS)),
        ("lhvdbg break-on-df --ar", "--arch"),
        ('lhvdbg break-on-df --arch ""', "amd64 i386"),
        ("lhvdbg break-on-df --arch amd64 --accel k", "kvm"),
        ('lhvdbg scenario ""', "run list"),
        ("lhvdbg scenario run --ju", "--junit"),
        ('lhvdbg scenario run -j 2 --accel ""', "tcg kvm auto"),
        ('lhvdbg completion ""', "bash zsh"),
        ("lhvdbg show x.json i", "idt"),
        ("lhvdbg doctor --", "--help --json"),
        ("lhvdbg diff-tss --at-", "--at-df"),
        ("lhvdbg break-on-df --variant pic", "pic-unremapped"),
        ("lhvdbg diff-tss --variant ist", "ist-without-tss"),
        ("lhvdbg diff-tss --reference lhv-a", "lhv-amd64"),
        ("lhvdbg show pe", "pebbles"),
    ],
)
def test_completion_answers_in_bash(bash_file: Path, words: str, expected: str) -> None:
    (got,) = _bash(bash_file, f"ask {words}")
    assert got == expected


def test_an_option_value_is_not_taken_for_the_command(bash_file: Path) -> None:
    # "--timeout 5 --a": 5 is --timeout's value, the options are still break-on-df's
    (got,) = _bash(bash_file, "ask lhvdbg break-on-df --timeout 5 --ac")
    assert got == "--accel"


def test_file_options_complete_file_names(bash_file: Path, tmp_path: Path) -> None:
    (tmp_path / "kernel-one.elf").write_bytes(b"")
    calls = f"cd {tmp_path}\nask lhvdbg break-on-df --kernel kern\nask lhvdbg show ker"
    kernel, show = _bash(bash_file, calls)
    assert kernel == "kernel-one.elf"
    assert show == "kernel-one.elf"


def test_global_options_match_the_cli_parser() -> None:
    parser = build_parser(load_all())
    strings = {s for action in parser._actions for s in action.option_strings}
    assert strings == set(GLOBAL_OPTIONS)


def test_every_option_of_every_command_is_in_the_script() -> None:
    script = bash_script(command_specs())
    for cmd in load_all().offered_in("cli"):
        parser = cmd.parser()
        for action in parser._actions:
            for string in action.option_strings:
                if action.help != "==SUPPRESS==":
                    line = next(
                        line
                        for line in script.splitlines()
                        if line.startswith(f"_lhvdbg_opts[lhvdbg/{cmd.name}]=")
                    )
                    assert f" {string}" in line or f"'{string}" in line, (cmd.name, string)


def test_hidden_options_are_not_offered() -> None:
    assert "--worker-result" not in bash_script(command_specs())


def test_zsh_script_runs_the_same_function_through_bashcompinit() -> None:
    specs = command_specs()
    script = zsh_script(specs)
    assert "bashcompinit" in script
    assert script.endswith(bash_script(specs).split("\n", 1)[1])


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh not installed (Debian: zsh)")
def test_completion_answers_in_zsh(tmp_path: Path) -> None:
    path = tmp_path / "lhvdbg.zsh"
    path.write_text(_script("zsh"))
    code = (
        f"source {path}\nprint ${{_comps[lhvdbg]}}\n"
        'ask() { COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMPREPLY=(); _lhvdbg; '
        'print -- "${COMPREPLY[*]}"; }\n'
        'ask lhvdbg break-on-df --arch ""\nask lhvdbg scenario ""\n'
    )
    done = subprocess.run(["zsh", "-f", "-c", code], capture_output=True, text=True, check=True)
    # zsh's compgen does not filter by the prefix (compadd does): ask with an empty word
    assert done.stdout.splitlines() == ["_bash_complete -F _lhvdbg", "amd64 i386", "run list"]


def test_unknown_shell_is_a_usage_error() -> None:
    done = subprocess.run(
        [*LHVDBG, "completion", "fish"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert "invalid choice: 'fish'" in done.stderr
