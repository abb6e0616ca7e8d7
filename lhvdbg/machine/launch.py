"""How a session's machine is launched: the configuration and the command lines it gives.

Pure apart from looking at files (does the firmware exist, where a QEMU binary's own
firmware folder is) and :func:`qemu_version`, which runs ``qemu -version`` once per
binary. Nothing here starts a session: :mod:`lhvdbg.machine.session` does.

The QEMU binary is ``--qemu PATH`` (``LaunchConfig.qemu``), else ``$LHVDBG_QEMU``, else
``qemu-system-x86_64`` (or ``-i386``) on ``PATH``. A binary unpacked from Debian packages
into a folder (``<root>/usr/bin/qemu-system-x86_64`` beside ``<root>/usr/share/qemu``,
as ``make qemu10`` does) gets ``-L <root>/usr/share/qemu -L /usr/share/seabios``: its
firmware folder first, then the system's SeaBIOS that the Debian package links to.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import lhvdbg
from lhvdbg.errors import KernelError, QemuError, ToolMissingError, UsageError

if TYPE_CHECKING:
    from lhvdbg.machine.workdir import SessionPaths
    from lhvdbg.state.elf import KernelInfo
    from lhvdbg.x86.cpustate import Arch

Accel = Literal["tcg", "kvm", "auto"]

DEFAULT_VARIANT = "pic-unremapped"
DEFAULT_ARCH: Arch = "amd64"
FIRMWARE_DIR_ENV = "LHVDBG_FIRMWARE_DIR"
QEMU_ENV = "LHVDBG_QEMU"
DEBUG_EXIT_PORT = 0xF4
SYSTEM_SEABIOS = Path("/usr/share/seabios")
_VERSION_RE = re.compile(r"QEMU emulator version (\d+\.\d+(?:\.\d+)?)")


def firmware_dir() -> Path:
    """The firmware source directory: ``$LHVDBG_FIRMWARE_DIR`` or ``<repo>/firmware``."""
    env = os.environ.get(FIRMWARE_DIR_ENV)
    if env:
        return Path(env)
    return Path(lhvdbg.__file__).resolve().parents[1] / "firmware"


def firmware_path(arch: Arch, variant: str) -> Path:
    """Where the built firmware ELF for ``arch``/``variant`` lives (it may not exist)."""
    return firmware_dir() / "build" / arch / f"lhv-{variant}.elf"


def kvm_usable() -> bool:
    """Whether ``/dev/kvm`` can be opened read-write by this process."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


@dataclass(frozen=True)
class LaunchConfig:
    """How to start the machine.

    ``kernel`` is any multiboot kernel (ELF32, or ELF64 with the a.out kludge); ``cdrom``
    an ISO image (e.g. GRUB); ``variant`` a built firmware variant of ``arch``
    (``firmware/build/<arch>/lhv-<variant>.elf``). With none of the three, the firmware
    variant ``pic-unremapped`` is used. ``symbols`` is the ELF gdb loads symbols from
    (default: the kernel; useful with ``cdrom``). ``accel`` is ``tcg``, ``kvm`` or ``auto``
    (KVM when ``/dev/kvm`` is usable). ``qemu_system`` is ``x86_64`` (default, for both
    arches) or ``i386``. ``qemu`` is the QEMU binary to run (a path or a name on
    ``PATH``; default ``$LHVDBG_QEMU``, else ``qemu-system-<qemu_system>``).
    ``extra_args`` are appended to QEMU's command line. ``debug_exit`` adds
    ``isa-debug-exit`` at port 0xf4; ``int_log`` adds ``-d int,cpu_reset`` under TCG.
    """

    kernel: Path | None = None
    cdrom: Path | None = None
    arch: Arch = DEFAULT_ARCH
    variant: str | None = None
    accel: Accel = "tcg"
    memory_mb: int = 128
    append: str = ""
    extra_args: tuple[str, ...] = ()
    debug_exit: bool = True
    int_log: bool = True
    symbols: Path | None = None
    qemu_system: Literal["x86_64", "i386"] = "x86_64"
    qemu: str | None = None

    def __post_init__(self) -> None:
        given = [n for n in ("kernel", "cdrom", "variant") if getattr(self, n) is not None]
        if len(given) > 1:
            raise UsageError(f"give only one of --kernel, --cdrom, --variant (got {given})")
        if self.accel not in ("tcg", "kvm", "auto"):
            raise UsageError(f"unknown accelerator {self.accel!r} (tcg, kvm or auto)")
        if self.arch not in ("amd64", "i386"):
            raise UsageError(f"unknown arch {self.arch!r} (amd64 or i386)")
        if self.memory_mb < 2:
            raise UsageError(f"--memory {self.memory_mb}: too small (MiB)")

    @classmethod
    def for_variant(
        cls, variant: str = DEFAULT_VARIANT, arch: Arch = DEFAULT_ARCH, **kwargs: Any
    ) -> LaunchConfig:
        """A config for a built firmware variant (other fields as keyword arguments)."""
        return cls(variant=variant, arch=arch, **kwargs)

    @property
    def effective_variant(self) -> str | None:
        """The firmware variant booted (the default one when nothing was given)."""
        if self.variant is not None:
            return self.variant
        if self.kernel is None and self.cdrom is None:
            return DEFAULT_VARIANT
        return None

    def kernel_path(self) -> Path | None:
        """The kernel ELF booted with ``-kernel``, if any.

        For a firmware variant this is its build path; KernelError with the hint
        ``make -C firmware`` when it was not built. ``None`` for a CD-ROM.
        """
        if self.kernel is not None:
            return self.kernel
        variant = self.effective_variant
        if variant is None:
            return None
        path = firmware_path(self.arch, variant)
        if not path.is_file():
            raise KernelError(
                f"firmware {self.arch}/lhv-{variant}.elf is not built ({path}): "
                f"run make -C {firmware_dir()}",
                path=str(path),
            )
        return path

    def symbol_path(self) -> Path | None:
        """The ELF gdb and LiveTarget read symbols from, if any."""
        return self.symbols or self.kernel_path()

    def qemu_binary(self) -> str:
        """The QEMU to run as given: ``qemu``, ``$LHVDBG_QEMU`` or ``qemu-system-<sys>``.

        ``$LHVDBG_QEMU`` names a QEMU installation's ``qemu-system-x86_64``: a run that asks
        for ``qemu_system="i386"`` gets the ``qemu-system-i386`` beside it (gdb is set up
        for that binary's register set)."""
        if self.qemu:
            return self.qemu
        env = os.environ.get(QEMU_ENV)
        if env and self.qemu_system != "x86_64" and Path(env).name == "qemu-system-x86_64":
            return str(Path(env).with_name(f"qemu-system-{self.qemu_system}"))
        return env or f"qemu-system-{self.qemu_system}"

    def resolved_accel(self) -> Literal["tcg", "kvm"]:
        """``auto`` resolved: kvm when ``/dev/kvm`` is usable, else tcg."""
        if self.accel == "auto":
            return "kvm" if kvm_usable() else "tcg"
        return self.accel

    def describe(self) -> str:
        """A short human description: ``amd64 lhv-good.elf``."""
        if self.cdrom is not None:
            return f"cdrom {self.cdrom.name}"
        if self.kernel is not None:
            return f"kernel {self.kernel.name}"
        return f"{self.arch} lhv-{self.effective_variant}.elf"


@dataclass(frozen=True)
class KernelChoice:
    """What a config boots: the ``-kernel`` ELF (None for a CD-ROM), the ELF symbols
    come from, and the arch (from the ELF class when a kernel or symbols were given)."""

    kernel: Path | None
    symbol_path: Path | None
    arch: Arch
    note: str | None = None  # how the symbols were found, when lhvdbg chose them

    def read_info(self) -> KernelInfo | None:
        """Facts of the symbol ELF (the kernel's, checked bootable, by default)."""
        from lhvdbg.state.elf import inspect_elf, inspect_kernel

        if self.symbol_path is not None and self.symbol_path != self.kernel:
            return inspect_elf(self.symbol_path)
        return inspect_kernel(self.kernel) if self.kernel is not None else None


def choose_kernel(config: LaunchConfig) -> KernelChoice:
    """The kernel and symbol files of ``config``, checked from their first 8 KiB
    (KernelError when not bootable, or the firmware not built) before anything starts."""
    from lhvdbg.state.elf import elf_class_quick, is_flat_multiboot, kernel_class_quick

    kernel = config.kernel_path()
    if config.cdrom is not None and not config.cdrom.is_file():
        raise KernelError(f"cdrom image not found: {config.cdrom}", path=str(config.cdrom))
    flat = kernel is not None and is_flat_multiboot(kernel)
    elf_class = kernel_class_quick(kernel) if kernel is not None and not flat else None
    # a flat image (a.out kludge) has no symbols for gdb: --symbols, else none
    symbol_path = config.symbols or (None if flat else kernel)
    note = None
    if config.cdrom is not None and config.symbols is None:
        symbol_path, note = _iso_symbols(config.cdrom)
    if symbol_path is not None and symbol_path != kernel:
        elf_class = elf_class_quick(symbol_path)
    arch = config.arch  # a flat image without --symbols: --arch says
    if elf_class is not None and (config.kernel is not None or symbol_path is not None):
        arch = "amd64" if elf_class == 64 else "i386"
    return KernelChoice(kernel, symbol_path, arch, note)


def _iso_symbols(iso: Path) -> tuple[Path | None, str]:
    """The multiboot ELF inside a CD-ROM image, extracted for gdb, and a note saying so."""
    from lhvdbg.state.iso import extract_iso_kernel

    found = extract_iso_kernel(iso)
    if found is None:
        return None, f"{iso.name}: no multiboot ELF found inside; no symbols (give --symbols)"
    path, kernel = found
    return path, f"symbols from {kernel.name} inside {iso.name} ({kernel.how})"


def find_qemu(config: LaunchConfig) -> str:
    """The absolute path of the QEMU binary ``config`` names; ToolMissingError when it is
    not there (a path that does not exist, or a name not on ``PATH``)."""
    given = config.qemu_binary()
    if os.sep in given:
        path = Path(given).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ToolMissingError(f"QEMU binary not found or not executable: {given}")
        return str(path.resolve())
    found = shutil.which(given)
    if found is None:
        raise ToolMissingError(
            f"{given} not found: install qemu-system-x86 (Debian package)", program=given
        )
    return found


def data_dir_args(binary: str) -> list[str]:
    """``-L`` options for a QEMU unpacked into a folder (``<root>/usr/bin/qemu-…`` with
    ``<root>/usr/share/qemu``): its own firmware folder, then the system's SeaBIOS. None
    for a QEMU installed in ``/usr`` (it finds its firmware by itself)."""
    path = Path(binary)
    if path.parent.name != "bin" or path.parent.parent.name != "usr":
        return []
    root = path.parent.parent.parent
    share = root / "usr" / "share" / "qemu"
    if root == Path("/") or not share.is_dir():
        return []
    args = ["-L", str(share)]
    if SYSTEM_SEABIOS.is_dir():
        args += ["-L", str(SYSTEM_SEABIOS)]
    return args


def parse_qemu_version(text: str) -> str | None:
    """``"7.2.22"`` from ``qemu -version`` output (``QEMU emulator version 7.2.22 (…)``)."""
    m = _VERSION_RE.search(text)
    return m.group(1) if m else None


@functools.lru_cache(maxsize=8)
def qemu_version(binary: str) -> str:
    """The version of the QEMU at ``binary`` from ``binary -version`` (cached per path);
    QemuError when it does not run or says no version."""
    try:
        out = subprocess.run(
            [binary, "-version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise QemuError(f"{binary} -version failed: {exc}", qemu_command=[binary]) from exc
    version = parse_qemu_version(out.stdout)
    if version is None:
        why = (out.stderr or out.stdout).strip().splitlines()
        raise QemuError(
            f"{binary} -version gave no version: {why[0] if why else 'no output'}",
            qemu_command=[binary, "-version"],
        )
    return version


def build_qemu_argv(
    config: LaunchConfig,
    paths: SessionPaths,
    *,
    accel: str,
    kernel: Path | None,
    binary: str | None = None,
) -> list[str]:
    """The QEMU command line for ``config`` (pure). ``binary`` is the resolved path
    (:func:`find_qemu`; its ``-L`` folders follow it); default the configured name."""
    exe = binary or config.qemu_binary()
    argv = [
        exe,
        *data_dir_args(exe),
        "-S",
        "-no-user-config",
        "-display",
        "none",
        "-monitor",
        "none",
        "-parallel",
        "none",
        "-net",
        "none",
        "-m",
        str(config.memory_mb),
        "-accel",
        accel,
        "-chardev",
        f"file,id=ser0,path={paths.serial_log}",
        "-serial",
        "chardev:ser0",
        "-chardev",
        f"socket,id=gdb0,path={paths.gdb_socket},server=on,wait=off",
        "-gdb",
        "chardev:gdb0",
        "-chardev",
        f"socket,id=qmp0,path={paths.qmp_socket},server=on,wait=off",
        "-mon",
        "chardev=qmp0,mode=control",
        "-chardev",
        f"socket,id=hmp0,path={paths.hmp_socket},server=on,wait=off",
        "-mon",
        "chardev=hmp0,mode=readline",
        "-action",
        "reboot=shutdown,shutdown=pause",
    ]
    if accel == "tcg" and config.int_log:
        argv += ["-d", "int,cpu_reset", "-D", str(paths.int_log)]
    if config.debug_exit:
        argv += ["-device", f"isa-debug-exit,iobase={DEBUG_EXIT_PORT:#x},iosize=0x04"]
    if kernel is not None:
        argv += ["-kernel", str(kernel)]
        if config.append:
            argv += ["-append", config.append]
    if config.cdrom is not None:
        argv += ["-cdrom", str(config.cdrom), "-boot", "d"]
    argv += list(config.extra_args)
    return argv


def gdb_setup(config: LaunchConfig, symbol_path: Path | None, gdb_socket: Path) -> list[str]:
    """The MI commands that set gdb up for ``config``; the last one connects it."""
    gdb_arch = "i386:x86-64" if config.qemu_system == "x86_64" else "i386"
    setup = [
        "-gdb-set mi-async on",
        "-gdb-set pagination off",
        "-gdb-set confirm off",
        "-gdb-set width 0",
        "-gdb-set print symbol-loading off",
        f"-gdb-set architecture {gdb_arch}",
    ]
    if symbol_path is not None:
        # after the architecture: an ELF32 must not switch gdb to i386 ('g' packet)
        setup.append(f'-file-symbol-file "{mi_quote(str(symbol_path))}"')
    return [*setup, f"-target-select remote {gdb_socket}"]


def mi_quote(text: str) -> str:
    """``text`` escaped for a double-quoted MI argument."""
    return text.replace("\\", "\\\\").replace('"', '\\"')
