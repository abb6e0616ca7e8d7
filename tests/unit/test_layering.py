"""The import layering of docs/architecture.md, checked in fresh interpreters.

The pure layers (x86, state, diagnose) import no backend (qemu.qmp, pygdbmi), no
rendering (rich, prompt_toolkit) and none of machine/ui/commands; ``lhvdbg --help`` stays
light (commands import heavy modules inside ``run``). The arrows between lhvdbg's own
modules, cycles included, are read from the source by ``test_import_graph.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
HEAVY = ("qemu", "pygdbmi", "rich", "prompt_toolkit")
UPPER = ("lhvdbg.machine", "lhvdbg.ui", "lhvdbg.commands", "lhvdbg.cli")

_IMPORT_ALL = """
import importlib, json, pkgutil, sys
import lhvdbg.{package} as package
names = [package.__name__]
for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    importlib.import_module(info.name)
    names.append(info.name)
print(json.dumps({{"imported": names, "modules": sorted(sys.modules)}}))
"""

_HELP = """
import contextlib, io, json, sys
from lhvdbg.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    try:
        main(["--help"])
    except SystemExit:
        pass
print(json.dumps({"help": out.getvalue(), "modules": sorted(sys.modules)}))
"""


def _run(code: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def _offenders(modules: object, prefixes: tuple[str, ...]) -> list[str]:
    assert isinstance(modules, list)
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes)]


@pytest.mark.parametrize("package", ["x86", "state", "diagnose"])
def test_pure_layers_import_no_backend_ui_or_upper_layer(package: str) -> None:
    result = _run(_IMPORT_ALL.format(package=package))
    imported = result["imported"]
    assert isinstance(imported, list) and len(imported) > 1  # the walk found modules
    assert _offenders(result["modules"], HEAVY) == []
    assert _offenders(result["modules"], UPPER) == []


def test_help_imports_no_heavy_module() -> None:
    result = _run(_HELP)
    assert "show" in str(result["help"]) and "diff" in str(result["help"])
    assert _offenders(result["modules"], HEAVY) == []


def test_the_probe_sees_what_a_layer_really_imports() -> None:
    """The control: the same probe on ``ui``, unchanged, reports the rich that ui's
    own modules import at module level (a probe that walked no module, or looked at the
    wrong process, would report nothing and fail here)."""
    result = _run(_IMPORT_ALL.format(package="ui"))
    offenders = _offenders(result["modules"], HEAVY)
    assert "rich" in offenders and "rich.table" in offenders
    assert "lhvdbg.ui.shell" in str(result["imported"])
