"""The firmware's numbers for tests and fixture recorders, read from the firmware itself.

Variants come from ``firmware/Makefile`` (``VARIANTS_<arch>``); selectors, vectors, PIC
bases, ports, exit codes and ``struct tss`` offsets from the DWARF of the ``good`` image
of each architecture (:mod:`lhvdbg.state.firmware_facts`). A test that needs one of these
numbers takes it from here instead of typing it again. Fixture recorders import this
module too (they put the repository root on ``sys.path`` themselves).
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


_TSS_SHOWN = ("rsp0", "ist", "esp0", "ss0", "iomap_base")


def numbers_table() -> str:
    """The Markdown table of docs/firmware.md's "The numbers" section, from the DWARF of
    both architectures (regenerate it with ``PYTHONPATH=. .venv/bin/python -c "from
    tests.firmware_facts import numbers_table; print(numbers_table())"``)."""
    rows = ["| enumerator | " + " | ".join(ARCHES) + " |", "| --- |" + " --- |" * len(ARCHES)]
    groups = (
        ("LHV_SEL_", "selectors"),
        ("LHV_VEC_", "vectors"),
        ("LHV_PORT_", "ports"),
        ("LHV_EXIT_", "exit_codes"),
    )
    for prefix, mapping in groups:
        names: dict[str, None] = {}
        for arch in ARCHES:
            names.update(dict.fromkeys(getattr(facts(arch), mapping)))
        for name in names:
            cells = []
            for arch in ARCHES:
                value = getattr(facts(arch), mapping).get(name)
                cells.append("-" if value is None else f"{value:#04x}")
            rows.append(f"| `{prefix}{name}` | " + " | ".join(cells) + " |")
    offsets = ", ".join(
        f"{arch}: "
        + ", ".join(
            f"`{m}` {o:#x}"
            for m, o in facts(arch).tss_offsets.items()
            if not m.startswith("reserved")
        )
        for arch in ARCHES
    )
    return "\n".join(rows) + f"\n\n`struct tss` ({facts(ARCHES[0]).tss_size} bytes) — {offsets}.\n"
