"""Set-up installs what CI got: every Python requirement pinned exactly, the venv as pinned,
and CI running the README's own test command."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def _pins() -> dict[str, str]:
    """constraints.txt as {canonical name: exact version}."""
    pins = {}
    for raw in (ROOT / "constraints.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep and version, f"constraints.txt: not an exact pin: {raw!r}"
        pins[canonicalize_name(name)] = version
    return pins


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = project["dependencies"] + project["optional-dependencies"]["dev"]
    return [Requirement(r) for r in names]


@pytest.mark.parametrize("req", _requirements(), ids=str)
def test_every_requirement_is_pinned_within_its_range(req: Requirement) -> None:
    pins = _pins()
    name = canonicalize_name(req.name)
    assert name in pins, f"{req.name} is not pinned in constraints.txt"
    assert req.specifier.contains(pins[name], prereleases=True), (
        f"constraints.txt pins {req.name}=={pins[name]}, outside pyproject's {req}"
    )


@pytest.mark.parametrize("name", sorted(_pins()))
def test_the_venv_holds_the_pinned_version(name: str) -> None:
    try:
        installed = metadata.version(name)
    except metadata.PackageNotFoundError:
        pytest.fail(f"{name} is pinned but not installed: run bash scripts/setup.sh")
    assert installed == _pins()[name], "the venv differs from constraints.txt: run setup"


def test_the_build_backend_is_pinned() -> None:
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]
    assert [Requirement(r).name for r in build["requires"]] == ["setuptools"]
    assert str(Requirement(build["requires"][0]).specifier).startswith("==")


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in quick.strip().splitlines()]
    assert len(commands) == 2, commands
    ci = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith("#") and not re.match(r"(set|cd) ", line)
    ]
    assert ci == [commands[1]], f".ci/run runs {ci}, the README's test command is {commands[1]}"
