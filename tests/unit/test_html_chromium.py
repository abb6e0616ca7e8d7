"""The HTML report rendered by a real browser: headless Chromium (Debian ``chromium``).

Chromium loads the page from a file with DNS answered "not found" for every name (so
nothing can leave the machine even by mistake) and a network log: the page itself must
start no request (Chromium's own background requests carry no page initiator and are not
the page's), the DOM Chromium built must hold the chain rows and the 256 vector cells, and
a screenshot must be far from blank. A control page with one remote image shows the
request check can fail.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from lhvdbg.diagnose.history import compare_histories
from lhvdbg.diagnose.report import make_report
from lhvdbg.ui.html import comparison_page, report_page
from tests.unit.test_diagnose_recorded import recorded as recorded_evidence
from tests.unit.test_history import GOOD
from tests.unit.test_html import parse
from tests.unit.test_html_history import IST_WITHOUT_TSS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (Debian: apt-get install --no-install-recommends chromium)",
)

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)
TIMEOUT = 90
CONTROL = '<!DOCTYPE html><html><body><img alt="" src="http://lhvdbg-control.invalid/x.png">'


@dataclass
class Rendered:
    page: str
    dom: str
    requests: list[str]
    control_requests: list[str]
    compare_dom: str
    compare_requests: list[str]
    screenshot: bytes
    blank: bytes


def _chromium(tmp: Path, name: str, url: str, *extra: str) -> subprocess.Popen[bytes]:
    assert CHROMIUM is not None
    argv = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp / ('profile-' + name)}", *extra, url]
    out = (tmp / f"{name}.out").open("wb")
    return subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL, cwd=tmp)


def _page_requests(netlog: Path) -> list[str]:
    """URLs of the requests a page started (initiator: the page's origin, ``null`` for a
    file); Chromium's own background requests say ``not an origin``."""
    data = json.loads(netlog.read_text())
    names = {number: name for name, number in data["constants"]["logEventTypes"].items()}
    found = []
    for event in data["events"]:
        if names.get(event["type"]) != "URL_REQUEST_START_JOB":
            continue
        params = event.get("params", {})
        url, initiator = params.get("url"), params.get("initiator")
        if url and initiator != "not an origin" and not url.startswith("file:"):
            found.append(url)
    return found


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    tmp = tmp_path_factory.mktemp("chromium")
    ev = recorded_evidence("ist-without-tss", "amd64", reference=True)
    page = report_page(
        make_report(ev), snapshot=ev.snapshot, tables=ev.tables, reference=ev.reference
    )
    (tmp / "report.html").write_text(page)
    comparison = compare_histories(GOOD, IST_WITHOUT_TSS)
    (tmp / "compare.html").write_text(
        comparison_page(comparison, "good", "ist-without-tss", accel="tcg")
    )
    (tmp / "control.html").write_text(CONTROL)
    (tmp / "blank.html").write_text("<!DOCTYPE html><html><body></body></html>")
    size = "--window-size=1280,2400"
    runs = [
        _chromium(
            tmp,
            "dom",
            (tmp / "report.html").as_uri(),
            f"--log-net-log={tmp / 'report.netlog'}",
            "--dump-dom",
        ),
        _chromium(
            tmp,
            "control",
            (tmp / "control.html").as_uri(),
            f"--log-net-log={tmp / 'control.netlog'}",
            "--dump-dom",
        ),
        _chromium(
            tmp,
            "compare",
            (tmp / "compare.html").as_uri(),
            f"--log-net-log={tmp / 'compare.netlog'}",
            "--dump-dom",
        ),
        _chromium(
            tmp, "shot", (tmp / "report.html").as_uri(), size, f"--screenshot={tmp / 'r.png'}"
        ),
        _chromium(
            tmp, "blank", (tmp / "blank.html").as_uri(), size, f"--screenshot={tmp / 'b.png'}"
        ),
    ]
    try:
        for run in runs:
            assert run.wait(timeout=TIMEOUT) == 0
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
                run.wait()
    return Rendered(
        page=page,
        dom=(tmp / "dom.out").read_text(),
        requests=_page_requests(tmp / "report.netlog"),
        control_requests=_page_requests(tmp / "control.netlog"),
        compare_dom=(tmp / "compare.out").read_text(),
        compare_requests=_page_requests(tmp / "compare.netlog"),
        screenshot=(tmp / "r.png").read_bytes(),
        blank=(tmp / "b.png").read_bytes(),
    )


def _png_pixels(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and the (still filtered) pixel bytes of a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, width, height, idat = 8, 0, 0, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    return width, height, zlib.decompress(idat)


def test_the_dom_holds_the_chain_rows_and_the_vector_map(rendered: Rendered) -> None:
    dom = parse(rendered.dom)
    kinds = [r.attrs["data-kind"] for r in dom.find("tr", "chain-row")]
    assert kinds == ["context", "delivered", "delivered", "folded", "stop", "folded", "triple"]
    cells = dom.find("g", "vec")
    assert [int(c.attrs["data-vector"]) for c in cells] == list(range(256))
    assert dom.find("li", "cause")[0].attrs["data-cause"] == "ist-without-tss"


def test_the_compare_page_holds_both_timelines_and_the_divergence(rendered: Rendered) -> None:
    dom = parse(rendered.compare_dom)
    rows = dom.find("tr", "history-row")
    sides = [r.attrs["data-side"] for r in rows]
    assert sides == ["bad"] * len(IST_WITHOUT_TSS.events) + ["good"] * len(GOOD.events)
    assert dom.find("tr", "difference-row")[0].attrs["data-first"] == "yes"
    triple = [r for r in rows if r.attrs["data-kind"] == "fault"]
    assert len(triple) == 1 and "triple fault" in triple[0].text
    assert rendered.compare_requests == []


def test_the_page_starts_no_request(rendered: Rendered) -> None:
    assert rendered.requests == []
    assert "://" not in rendered.page


def test_the_request_check_sees_a_page_that_fetches(rendered: Rendered) -> None:
    assert rendered.control_requests == ["http://lhvdbg-control.invalid/x.png"]


def test_the_screenshot_is_not_blank(rendered: Rendered) -> None:
    width, height, pixels = _png_pixels(rendered.screenshot)
    assert (width, height) == (1280, 2400)
    assert len(set(pixels)) > 64  # many colours and shades, not one background
    blank_pixels = _png_pixels(rendered.blank)[2]
    assert len(set(blank_pixels)) < 16
    assert len(rendered.screenshot) > 20 * len(rendered.blank)
