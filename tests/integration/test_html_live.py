"""``--html FILE`` end to end: break-on-df and diff-tss on the real firmware (QEMU + gdb,
TCG) write a page that holds the run's chain, vector map and TSS comparison."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import firmware_elf
from tests.unit.test_html import assert_self_contained, parse

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _lhvdbg(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lhvdbg", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_break_on_df_writes_the_page_of_its_run(firmware_built: Path, tmp_path: Path) -> None:
    assert firmware_elf("amd64", "ist-without-tss").is_file()
    page = tmp_path / "report.html"
    done = _lhvdbg("break-on-df", "--variant", "ist-without-tss", "--json", "--html", str(page))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert done.stderr == f"lhvdbg: wrote {page}\n"
    text = page.read_text()
    assert_self_contained(text)
    dom = parse(text)
    rows = dom.find("tr", "chain-row")
    steps = [r for r in rows if r.attrs["data-kind"] not in ("context", "triple")]
    assert [int(r.attrs["data-vector"]) for r in steps] == [s["vector"] for s in report["chain"]]
    assert rows[-1].attrs["data-kind"] == "triple" and report["triple_fault"] is True
    assert len(dom.find("g", "vec")) == 256
    assert dom.find("li", "cause")[0].attrs["data-cause"] == report["diagnosis"][0]["id"]
    assert f"QEMU</b> {report['qemu_version']}" in text


def test_diff_tss_writes_the_page_of_its_run(firmware_built: Path, tmp_path: Path) -> None:
    assert firmware_elf("amd64", "no-ltr").is_file()
    page = tmp_path / "tss.html"
    done = _lhvdbg("diff-tss", "--variant", "no-ltr", "--html", str(page))
    assert done.returncode == 0, done.stderr
    dom = parse(page.read_text())
    rows = {r.text.split()[0]: r for r in dom.find("tr", "tss-row")}
    assert "harmless" in rows["tr.selector"].text
    assert len(dom.find("g", "vec")) == 256
