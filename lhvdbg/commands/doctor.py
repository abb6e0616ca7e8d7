"""``lhvdbg doctor``: what this machine can do for lhvdbg, and what to install.

Each check is one line: ok / missing (or ``limited``), what was found (path, version), and
the Debian package that provides it. The core is one working QEMU and gdb: exit 0 when
both are there, 1 otherwise. Nothing is started except ``--version`` of each tool (with a
short timeout); ``/dev/kvm`` is opened read-write and closed at once.
"""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from lhvdbg.commands.registry import Context, command

__all__ = ["HostCheck", "run_checks"]

Status = Literal["ok", "missing", "limited"]

QEMU_ENV = "LHVDBG_QEMU"
QEMU_LOCAL = Path(".qemu10") / "usr" / "bin" / "qemu-system-x86_64"
VERSION_TIMEOUT = 10.0
KVM_PVM_LIMITS = (
    "software breakpoints crash the guest (KVM internal error, emulation failure): "
    "lhvdbg uses hardware breakpoints under KVM",
    "hardware watchpoints never fire",
    "-d int logs nothing: the chain comes from the stack frame, not the log",
)


@dataclass(frozen=True)
class HostCheck:
    """One line of the doctor's report."""

    name: str
    status: Status
    found: str  # path and version, or what is wrong
    package: str | None = None  # Debian package(s) that provide it
    core: bool = False  # lhvdbg cannot run without it (one QEMU, gdb)
    version: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """JSON form (``notes`` as a list)."""
        out = asdict(self)
        out["notes"] = list(self.notes)
        return out


def _first_line(argv: list[str]) -> str | None:
    """The first non-empty output line of ``argv`` (a ``--version`` call), or None."""
    import subprocess

    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    for line in (done.stdout + "\n" + done.stderr).splitlines():
        if line.strip():
            return line.strip()
    return None


def _version_word(line: str | None, marker: str) -> str | None:
    """The word after ``marker`` in ``line`` (``QEMU emulator version 7.2.22 (...)``)."""
    if line is None or marker not in line:
        return None
    rest = line.split(marker, 1)[1].split()
    return rest[0] if rest else None


def _gdb_version(line: str | None) -> str | None:
    """``13.1`` from ``GNU gdb (Debian 13.1-3) 13.1``: the last word."""
    if line is None or not line.startswith("GNU gdb"):
        return None
    return line.split()[-1]


def project_root() -> Path:
    """The checkout lhvdbg runs from (``<root>/lhvdbg/__init__.py``)."""
    import lhvdbg

    return Path(lhvdbg.__file__).resolve().parents[1]


def _qemu(
    name: str, path: str | None, package: str, missing: str, *, core: bool = False
) -> HostCheck:
    """A QEMU binary (``core``: the one lhvdbg runs by default)."""
    if path is None:
        return HostCheck(name, "missing", missing, package, core=core)
    line = _first_line([path, "--version"])
    version = _version_word(line, "version ")
    if version is None:
        found = f"{path} does not run ({line or 'no output'})"
        return HostCheck(name, "missing", found, package, core=core)
    return HostCheck(name, "ok", f"{path}, QEMU {version}", package, core=core, version=version)


def check_system_qemu() -> HostCheck:
    """``qemu-system-x86_64`` on PATH."""
    return _qemu(
        "qemu (system)",
        shutil.which("qemu-system-x86_64"),
        "qemu-system-x86",
        "qemu-system-x86_64 not on PATH",
        core=True,
    )


def check_local_qemu(root: Path) -> HostCheck:
    """The project-local QEMU 10 (``.qemu10/usr/bin/qemu-system-x86_64``), if unpacked."""
    path = root / QEMU_LOCAL
    return _qemu(
        "qemu (project-local)",
        str(path) if path.is_file() else None,
        "make qemu10 (qemu-system-x86 from bookworm-backports, unpacked into .qemu10)",
        f"no {QEMU_LOCAL} in {root} (optional: a second QEMU version, "
        f"for --qemu PATH or ${QEMU_ENV})",
    )


def check_env_qemu() -> HostCheck | None:
    """``$LHVDBG_QEMU`` when it is set."""
    value = os.environ.get(QEMU_ENV)
    if not value:
        return None
    path = shutil.which(value) or (value if Path(value).is_file() else None)
    return _qemu(
        f"qemu (${QEMU_ENV})", path, "qemu-system-x86", f"${QEMU_ENV}={value} is not a program"
    )


def check_gdb() -> HostCheck:
    """gdb on PATH and its version."""
    path = shutil.which("gdb")
    if path is None:
        return HostCheck("gdb", "missing", "gdb not on PATH", "gdb", core=True)
    line = _first_line([path, "--version"])
    version = _gdb_version(line)
    if version is None:
        return HostCheck("gdb", "missing", f"{path} does not run", "gdb", core=True)
    return HostCheck("gdb", "ok", f"{path}, gdb {version}", "gdb", core=True, version=version)


def _cpu_flags(cpuinfo: str) -> set[str]:
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def check_kvm(device: str = "/dev/kvm", cpuinfo: str | None = None) -> HostCheck:
    """Whether ``device`` opens read-write, and the limits of a KVM without VMX/SVM."""
    package = "qemu-system-x86 (and a kernel with KVM; access to /dev/kvm: group kvm)"
    if not os.path.exists(device):
        return HostCheck("kvm", "missing", f"no {device}: TCG only (the default)", package)
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return HostCheck(
            "kvm", "missing", f"{device} not usable ({exc.strerror}): TCG only", package
        )
    os.close(fd)
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    flags = _cpu_flags(cpuinfo)
    if flags and not flags & {"vmx", "svm"}:
        return HostCheck(
            "kvm",
            "limited",
            f"{device} usable, but the CPU shows no vmx/svm flag (kvm-pvm flavour)",
            package,
            notes=KVM_PVM_LIMITS,
        )
    which = "vmx" if "vmx" in flags else "svm" if "svm" in flags else "?"
    return HostCheck("kvm", "ok", f"{device} usable ({which})", package)


def _tool(name: str, program: str, package: str, version_flag: str = "--version") -> HostCheck:
    path = shutil.which(program)
    if path is None:
        return HostCheck(name, "missing", f"{program} not on PATH", package)
    line = _first_line([path, version_flag])
    return HostCheck(name, "ok", f"{path}" + (f" ({line})" if line else ""), package)


def check_grub() -> HostCheck:
    """grub-mkrescue with the BIOS (i386-pc) modules, for ``--cdrom`` ISOs."""
    path = shutil.which("grub-mkrescue")
    if path is None:
        return HostCheck("grub-mkrescue", "missing", "not on PATH", "grub-common grub-pc-bin")
    modules = Path("/usr/lib/grub/i386-pc")
    if not modules.is_dir():
        return HostCheck(
            "grub-mkrescue", "missing", f"{path}, but no BIOS modules ({modules})", "grub-pc-bin"
        )
    return HostCheck("grub-mkrescue", "ok", f"{path}, BIOS modules in {modules}", "grub-pc-bin")


def check_chromium() -> HostCheck:
    """Chromium, which the HTML report's tests render pages in (headless)."""
    for program in ("chromium", "chromium-browser"):
        path = shutil.which(program)
        if path is not None:
            line = _first_line([path, "--version"])
            return HostCheck(
                "chromium", "ok", f"{path}" + (f" ({line})" if line else ""), "chromium"
            )
    return HostCheck(
        "chromium", "missing", "not on PATH (optional: tests of --html pages)", "chromium"
    )


def run_checks(root: Path | None = None) -> list[HostCheck]:
    """Every check, in the order they are printed (run side by side)."""
    from concurrent.futures import ThreadPoolExecutor

    base = root or project_root()
    probes: list[Callable[[], HostCheck | None]] = [
        check_system_qemu,
        lambda: check_local_qemu(base),
        check_env_qemu,
        check_gdb,
        check_kvm,
        lambda: _tool("gcc", "gcc", "gcc"),
        lambda: _tool("ld", "ld", "binutils", "-v"),
        lambda: _tool("make", "make", "make"),
        check_grub,
        lambda: _tool("xorriso", "xorriso", "xorriso", "-version"),
        check_chromium,
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda probe: probe(), probes))
    return [r for r in results if r is not None]


def core_ok(checks: list[HostCheck]) -> bool:
    """One QEMU that runs and gdb."""
    qemu = any(c.status == "ok" for c in checks if c.name.startswith("qemu"))
    gdb = any(c.status == "ok" for c in checks if c.name == "gdb")
    return qemu and gdb


@command(
    "doctor",
    "say what this machine can do (QEMU, gdb, KVM, toolchain, GRUB, Chromium) and what to install",
    category="general",
    where={"cli"},
)
def run(args: argparse.Namespace, ctx: Context) -> int:
    """Run the checks, print them; exit 0 when one QEMU and gdb are there."""
    checks = run_checks()
    ok = core_ok(checks)
    data = {"core_ok": ok, "checks": [c.to_json() for c in checks]}
    if args.json:
        ctx.print_json(data)
    else:
        from lhvdbg.ui.doctor import render_doctor

        ctx.print(render_doctor(data))
    return 0 if ok else 1
