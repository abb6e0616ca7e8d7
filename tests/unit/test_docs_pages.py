"""The offline code samples of the docs pages run as written (tests/docs_samples.py).

docs/layouts.md's sample is executed line by line, and each expression whose comment is a
Python literal must evaluate to it; docs/diagnosis.md's ``@rule`` excerpt must be the real
decorator of ``rules/pic_not_remapped.py``, line for line.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from tests.docs_samples import ROOT, matches_shown, samples


def _literal(comment: str) -> tuple[bool, Any]:
    try:
        return True, ast.literal_eval(comment)
    except (ValueError, SyntaxError):
        return False, None


def test_the_layouts_sample_runs_and_its_comments_are_the_values() -> None:
    (sample,) = samples("docs/layouts.md", "python")
    namespace: dict[str, Any] = {}
    checked = 0
    for line in sample.lines():
        code, _, comment = line.partition("  #")
        if not code.strip():
            continue
        is_literal, expected = _literal(comment.strip())
        try:
            ast.parse(code.strip(), mode="eval")
            is_expression = True
        except SyntaxError:
            is_expression = False
        if is_literal and is_expression:
            assert eval(code.strip(), namespace) == expected, f"{sample.name}: {line}"
            checked += 1
        else:
            exec(code.strip(), namespace)
    assert checked >= 1, "no commented value was checked"
    assert namespace["d"].to_dict()["type_name"] == "32-bit TSS (available)"


def test_the_diagnosis_rule_excerpt_is_the_real_decorator() -> None:
    (sample,) = samples("docs/diagnosis.md", "python")
    source = (ROOT / "lhvdbg" / "diagnose" / "rules" / "pic_not_remapped.py").read_text()
    for line in sample.lines():
        shown = line.split("...")[0]
        if shown.strip():
            assert shown in source, f"{sample.name}: {line!r} is not in pic_not_remapped.py"


def test_a_comment_shows_a_printed_line_with_placeholders() -> None:
    assert matches_shown(
        "breakpoint 1 hit at kernel_main (0x...)", "breakpoint 1 hit at kernel_main (0x1032c0)"
    )
    assert matches_shown(
        "True x: expected equals 0x20, ...", "True x: expected equals 0x20, actual 0x20"
    )
    assert not matches_shown("vector 8", "vector 9")
    assert not matches_shown("at (0x...)", "at (kernel_main)")


def test_the_session_page_shows_the_command_lines_lhvdbg_builds() -> None:
    """docs/session.md's "What is started": every QEMU option the session passes (TCG, with
    the -d int log and isa-debug-exit, a kernel and its command line)."""
    from lhvdbg.machine.launch import LaunchConfig, build_qemu_argv
    from lhvdbg.machine.workdir import SessionPaths

    (block,) = [
        s.text for s in samples("docs/session.md", "") if s.text.startswith("qemu-system-x86_64")
    ]
    shown = " ".join(line.split("#", 1)[0] for line in block.split("\n"))
    config = LaunchConfig.for_variant("good", "amd64", append="TEXT")
    argv = build_qemu_argv(
        config,
        SessionPaths.inside(Path("$D")),
        accel="tcg",
        kernel=Path("K"),
        binary="qemu-system-x86_64",
    )
    assert argv[0] == "qemu-system-x86_64"
    options = " ".join(argv[1:]).replace(" -", "\n-").split("\n")
    assert len(options) > 15 and "-action reboot=shutdown,shutdown=pause" in options
    missing = [option for option in options if option not in shown]
    assert not missing, f"docs/session.md does not show {missing}"


def test_the_session_page_names_every_machine_module() -> None:
    """docs/session.md's module table lists every module of lhvdbg/machine/, and only those."""
    text = (ROOT / "docs" / "session.md").read_text()
    table = text[text.index("| module | job |") :].split("\n\n", 1)[0]
    named = {
        name
        for row in table.split("\n")[2:]
        for name in re.findall(r"`(\w+\.py)`", row.split("|")[1])
    }
    modules = {
        p.name for p in (ROOT / "lhvdbg" / "machine").glob("*.py") if p.name != "__init__.py"
    }
    assert named == modules, (sorted(modules - named), sorted(named - modules))


def test_the_interrupt_log_lines_the_diagnosis_page_shows_are_qemu_s() -> None:
    """docs/diagnosis.md's sketch of a ``-d int,cpu_reset`` log: each line (without its
    note; ``...`` any text) is a line of the recorded QEMU 7.2 logs of the firmware."""
    (block,) = [s for s in samples("docs/diagnosis.md", "") if s.text.startswith("Servicing")]
    logs = "\n".join(
        (ROOT / "tests" / "fixtures" / "intlog" / name).read_text()
        for name in ("lhv-timer-gate-missing.amd64.log", "lhv-stack-overflow.amd64.log")
    ).split("\n")
    for line in block.lines():
        shown = re.split(r" {2,}(?=[a-z(])", line.rstrip())[0] if line.strip() else ""
        shown = re.sub(r" \(register dump.*\)$", "", shown)
        if not shown:
            continue
        assert any(matches_shown(shown, log) for log in logs), f"{block.name}: {shown!r}"
