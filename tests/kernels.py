"""Small purpose-built multiboot kernels (tests/fixtures/kernels/*.S), assembled on
demand with the system's gcc and ld (ELF32, one RWX PT_LOAD at 1 MiB)."""

from __future__ import annotations

import subprocess
from pathlib import Path

KERNELS = Path(__file__).resolve().parent / "fixtures" / "kernels"

RESET_KBC, RESET_CF9, TRIPLE_FAULT, NO_IDT = 1, 2, 3, 0


def build_kernel(source: str, directory: Path, name: str, **defines: int) -> Path:
    """Assemble ``KERNELS/source`` with ``-Dkey=value`` into ``directory/name.elf``."""
    directory.mkdir(parents=True, exist_ok=True)
    obj, elf = directory / f"{name}.o", directory / f"{name}.elf"
    flags = [f"-D{k}={v}" for k, v in defines.items()]
    subprocess.run(["gcc", "-m32", *flags, "-c", str(KERNELS / source), "-o", str(obj)], check=True)
    subprocess.run(
        ["ld", "-m", "elf_i386", "-N", "-Ttext=0x100000", "--build-id=none",
         "--no-warn-rwx-segments", "-o", str(elf), str(obj)],
        check=True,
    )  # fmt: skip
    return elf


def reset_kernel(directory: Path, method: int) -> Path:
    """The reset kernel built for ``method`` (RESET_KBC, RESET_CF9, TRIPLE_FAULT, NO_IDT)."""
    return build_kernel("reset-kernel.S", directory, f"reset-{method}", METHOD=method)


def timer_kernel(directory: Path, name: str = "timer", **defines: int) -> Path:
    """The timer kernel (PIC remapped after lidt, 1 kHz PIT); ``STI_NOISE=n`` adds n
    unexecuted 0xFB bytes, ``TICKS``/``PIC_BASE`` as its source says."""
    return build_kernel("timer-kernel.S", directory, name, **defines)
