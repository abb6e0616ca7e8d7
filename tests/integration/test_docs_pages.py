"""The live code samples of the docs pages run as written, on the real firmware in real
QEMU (tests/docs_samples.py): the Python API samples of docs/session.md and
docs/scenarios.md (what they print is what their comments show) and the scenario file
format sample of docs/scenarios.md (it passes as a scenario)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs_samples import ROOT, Sample, matches_shown, samples

pytestmark = pytest.mark.integration

LHVDBG = Path(sys.executable).parent / "lhvdbg"


def _python_samples() -> list[object]:
    return [
        pytest.param(sample, id=sample.name)
        for page in ("docs/session.md", "docs/scenarios.md")
        for sample in samples(page, "python")
    ]


@pytest.mark.parametrize("sample", _python_samples())
def test_the_python_sample_prints_what_its_comments_show(
    sample: Sample, firmware_built: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", sample.text],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{sample.name} failed:\n{done.stderr}"
    printed = done.stdout.rstrip("\n").split("\n")
    shown = sample.printed()
    assert shown, f"{sample.name}: no print line shows its output"
    assert len(printed) == len(shown), (sample.name, printed)
    for want, got in zip(shown, printed, strict=True):
        assert matches_shown(want, got), f"{sample.name}: prints {got!r}, the page shows {want!r}"


def test_the_scenario_format_sample_passes(firmware_built: Path, tmp_path: Path) -> None:
    (sample,) = samples("docs/scenarios.md", "toml")
    path = tmp_path / "format-sample.toml"
    path.write_text(sample.text + "\n")
    done = subprocess.run(
        [str(LHVDBG), "scenario", "run", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("PASS  format-sample"), done.stdout
