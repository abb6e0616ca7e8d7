"""The firmware's numbers for tests and fixture recorders, read from the firmware itself.

Variants come from ``firmware/Makefile`` (``VARIANTS_<arch>``); selectors, vectors, PIC
bases, ports, exit codes and ``struct tss`` offsets from the DWARF of the ``good`` image
of each architecture (:mod:`lhvdbg.state.firmware_facts`). A test that needs one of these
numbers takes it from here instead of typing it again. Fixture recorders import this
module too (run them from the repository root with ``PYTHONPATH=.``).
"""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path

from lhvdbg.state.firmware_facts import FirmwareFacts, firmware_facts, firmware_variants

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"

VARIANTS: dict[str, tuple[str, ...]] = firmware_variants(FIRMWARE / "Makefile")
ARCHES: tuple[str, ...] = tuple(VARIANTS)
ARCH_VARIANTS: tuple[tuple[str, str], ...] = tuple(
    (arch, variant) for arch, variants in VARIANTS.items() for variant in variants
)


def elf_path(arch: str, variant: str = "good") -> Path:
    """Where ``make -C firmware`` puts the image of ``arch``/``variant``."""
    return FIRMWARE / "build" / arch / f"lhv-{variant}.elf"


@cache
def facts(arch: str) -> FirmwareFacts:
    """The ``good`` image's facts for ``arch`` (built first when it is missing; make is
    incremental, so a built tree costs one ``make -q``-like pass)."""
    if arch not in VARIANTS:
        raise KeyError(f"no firmware architecture {arch!r} (the Makefile has {ARCHES})")
    subprocess.run(
        ["make", "-s", "-C", str(FIRMWARE), f"ARCH={arch}", "VARIANT=good"],
        check=True,
        timeout=300,
    )
    return firmware_facts(elf_path(arch))
