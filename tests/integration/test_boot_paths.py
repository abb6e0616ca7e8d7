"""Boot paths users have (issue 11 §7): every variant's GRUB ISO (`make -C firmware
iso`) diagnosed with no --symbols (the ELF inside the ISO gives them), and a flat
multiboot image (a.out kludge, `objcopy -O binary`) with and without --symbols."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lhvdbg.cli import main
from tests.conftest import FIRMWARE, firmware_elf

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("grub-mkrescue") is None, reason="grub-mkrescue missing"),
]


@pytest.fixture(scope="module")
def isos(firmware_built: Path) -> Path:
    subprocess.run(["make", "-s", "-C", str(FIRMWARE), "iso"], check=True, timeout=600)
    return FIRMWARE / "build"


def variants() -> dict[str, list[str]]:
    text = (FIRMWARE / "Makefile").read_text()
    return {a: re.search(rf"^VARIANTS_{a} := (.*)$", text, re.M).group(1).split()  # type: ignore[union-attr]
            for a in ("amd64", "i386")}  # fmt: skip


def bod(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["break-on-df", *args, "--json"]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def test_make_iso_builds_every_variant(isos: Path) -> None:
    for arch, names in variants().items():
        for variant in names:
            assert (isos / arch / f"lhv-{variant}.iso").stat().st_size > 0, (arch, variant)
    assert (isos / "lhv-amd64.iso").is_file() and (isos / "lhv-i386.iso").is_file()


@pytest.mark.parametrize("arch", ["amd64", "i386"])
def test_cdrom_without_symbols_stops_at_the_handler(
    isos: Path, capsys: pytest.CaptureFixture[str], arch: str
) -> None:
    data = bod(capsys, "--cdrom", str(isos / arch / "lhv-pic-unremapped.iso"))
    assert data["arch"] == arch  # from the ELF inside the ISO
    assert data["outcome"] == "hardware-interrupt-on-vector-8"
    assert data["diagnosis"][0]["id"] == "pic-not-remapped"
    assert data["stop"]["reason"] == "vector" and data["stop"]["kernel_entered"] is True
    assert data["stop"]["detail"] == "vector 0x8 handler isr_8 reached (entry 1)"


def test_cdrom_run_names_where_the_symbols_came_from(
    isos: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--cdrom", str(isos / "amd64" / "lhv-good.iso"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["outcome"] == "debug-exit" and data["exit_name"] == "LHV_EXIT_OK"
    assert (
        "symbols from /boot/lhv.elf inside lhv-good.iso (/boot/grub/grub.cfg loads it)"
        in (data["notes"])
    )


def test_a_flat_image_with_and_without_symbols(
    firmware_built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elf = firmware_elf("amd64", "pic-unremapped")
    flat = tmp_path / "lhv.bin"
    subprocess.run(["objcopy", "-O", "binary", str(elf), str(flat)], check=True)
    bare = bod(capsys, "--kernel", str(flat))
    assert bare["outcome"] == "hardware-interrupt-on-vector-8"
    assert bare["diagnosis"][0]["id"] == "pic-not-remapped"
    assert bare["stop"]["detail"].startswith("vector 0x8 handler 0x")  # no names
    named = bod(capsys, "--kernel", str(flat), "--symbols", str(elf))
    assert named["stop"]["detail"] == "vector 0x8 handler isr_8 reached (entry 1)"
    assert named["stop"]["address"] == bare["stop"]["address"]
