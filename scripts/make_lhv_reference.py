"""Capture lhvdbg/state/references/lhv-{amd64,i386}.json from the firmware's good builds.

A known-good LHV: the firmware's ``good`` build stopped entering its 3rd PIT tick's
handler (``lhvdbg snapshot --variant good --after-ticks 3``), with the provenance marked
``reference`` and its scope cut to what does not depend on timing or on where the stop
fell (no GPRs, IP, flags, CR2/CR3, IRR/ISR, timer count). Run from the repository root
after the firmware's layout changes (``tests/unit/test_references.py`` says when):

    make -s -C firmware && .venv/bin/python scripts/make_lhv_reference.py [amd64|i386 ...]
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tempfile
from pathlib import Path

from lhvdbg.state.snapshot import load_snapshot, save_snapshot

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "lhvdbg" / "state" / "references"
TICKS = 3
SCOPE = (
    "arch",
    "cpu.mode",
    "cpu.cpl",
    "cpu.cr0",
    "cpu.cr4",
    "cpu.efer",
    "cpu.segments",
    "cpu.gdtr",
    "cpu.idtr",
    "gdt",
    "idt",
    "tss",
    "pic.master.irq_base",
    "pic.slave.irq_base",
    "pic.master.imr",
    "pic.slave.imr",
    "lapic.svr",
    "lapic.lvt_timer",
    "lapic.timer_initial",
    "lapic.timer_divide",
    "lapic.lvt",
)


def last_firmware_commit() -> str:
    """The last commit that touched firmware/ (for the note; the ELF's SHA-256 is exact)."""
    done = subprocess.run(
        ["git", "log", "-1", "--format=%h", "--", "firmware"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def capture(arch: str) -> Path:
    """Capture one arch's reference into OUT; its path."""
    command = f"lhvdbg snapshot --variant good --arch {arch} --after-ticks {TICKS}"
    with tempfile.TemporaryDirectory(prefix="lhv-reference-") as tmp:
        raw = Path(tmp) / "raw.json"
        subprocess.run(
            [str(ROOT / ".venv" / "bin" / "lhvdbg"), *command.split()[1:], "-o", str(raw)],
            cwd=ROOT,
            check=True,
        )
        snap = load_snapshot(raw)
    p = snap.provenance
    note = (
        f"LHV-good reference: the lhvdbg firmware good build ({arch}, built from the tree "
        f"whose last firmware commit was {last_firmware_commit()}; kernel_sha256 identifies "
        f"the exact ELF), captured by scripts/make_lhv_reference.py with '{command}' "
        f"(QEMU {p.qemu_version}, {p.accel}): stopped entering the {TICKS}rd PIT tick's "
        "handler. Scope: what does not depend on timing or on where the stop fell (no GPRs, "
        "IP, flags, CR2/CR3, IRR/ISR, timer count)."
    )
    provenance = dataclasses.replace(
        p,
        source="reference",
        kernel_path=f"firmware/build/{arch}/lhv-good.elf",
        note=note,
        scope=SCOPE,
    )
    out = OUT / f"lhv-{arch}.json"
    save_snapshot(dataclasses.replace(snap, provenance=provenance), out)
    return out


def main(argv: list[str]) -> int:
    for arch in argv or ["amd64", "i386"]:
        print(capture(arch))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
