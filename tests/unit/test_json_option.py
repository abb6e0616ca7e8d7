"""``--json``: declared in one place (the registry), on every command that prints a result."""

from __future__ import annotations

import re
from pathlib import Path

from lhvdbg.commands.registry import JSON_HELP, REGISTRY

PACKAGE = Path(__file__).resolve().parents[2] / "lhvdbg"
WITHOUT_JSON = {"completion", "context", "record", "scenario", "set", "shell"}


def _json_action(name: str) -> object | None:
    parser = REGISTRY.get(name).parser()
    return next((a for a in parser._actions if "--json" in a.option_strings), None)


def test_every_command_but_a_few_takes_json() -> None:
    REGISTRY.get("idt")  # loads every command module
    names = set(REGISTRY._commands)
    assert names > WITHOUT_JSON and len(names) > 40
    for name in sorted(names):
        action = _json_action(name)
        if name in WITHOUT_JSON:
            assert action is None, name
        else:
            assert action is not None, f"{name} has no --json"
    assert getattr(_json_action("idt"), "help", None) == JSON_HELP
    assert "first_divergence" in str(getattr(_json_action("compare"), "help", ""))


def test_json_is_added_only_by_the_registry() -> None:
    adds = re.compile(r"""add_argument\(\s*["']--json["']""")
    found = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if adds.search(path.read_text())
    ]
    assert found == ["commands/registry.py"]
