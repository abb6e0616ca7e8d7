"""Every generated example in README.md and docs/ says what the program prints now.

Each block marked ``<!-- example ... -->`` (tests/docs_examples.py) is run again against
the real firmware in real QEMU and compared with the page after normalisation (times,
pids, temporary paths). A page is compared only on the QEMU version it was generated with
(its last line says which), a ``needs=kvm`` block only where /dev/kvm is usable; blocks
marked ``offline`` are checked by tests/unit/test_docs_generator.py instead.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs_examples import (
    ROOT,
    Block,
    Runner,
    difference,
    fresh_run,
    page_version,
    pages,
    parse_page,
    qemu_version,
    why_not_compared,
)

pytestmark = pytest.mark.integration


def _live_blocks() -> list[object]:
    return [
        pytest.param(block, id=block.name)
        for page in pages()
        if page.exists()
        for block in parse_page(page)
        if not block.options.offline
    ]


@pytest.fixture(scope="module")
def runner(firmware_built: Path) -> Iterator[Runner]:
    """One runner for the module: the firmware and its ISOs (``--cdrom`` examples) built
    once, the fixture kernels too."""
    subprocess.run(["make", "-s", "-C", str(ROOT / "firmware"), "iso"], check=True, timeout=600)
    made = Runner()
    yield made
    made.close()


@pytest.fixture(scope="module")
def running_qemu() -> str | None:
    return qemu_version()


@pytest.mark.parametrize("block", _live_blocks())
def test_the_example_is_what_the_program_prints(
    block: Block, runner: Runner, running_qemu: str | None
) -> None:
    reason = why_not_compared(block, page_version(block.page.read_text()), running_qemu)
    if reason:
        pytest.skip(reason)
    fresh, same = fresh_run(runner, block)
    assert same, (
        f"{block.name}: the page differs from what the program prints now "
        "(make docs regenerates it; check the prose around it):\n" + difference(block, fresh)
    )
