"""What this host's KVM cannot run, said in one line.

Some hosts offer ``/dev/kvm`` without hardware virtualisation (no ``vmx``/``svm`` flag in
``/proc/cpuinfo``: a paravirtual KVM such as kvm-pvm, or a nested one). Measured on such a
host (docs/session.md): software breakpoints crash the guest with "KVM internal error.
Suberror: 1 (emulation failure)", watchpoints never fire, and 32-bit guests fault where a
CPU and TCG do not (the LHV i386 firmware takes #GP on the ``mov`` to CR0 that enables
paging; some ``iret`` and ``int n`` fail). A run that ends badly under such a KVM says so,
so the user compares with TCG instead of chasing a bug that is not theirs.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["INTERNAL_ERROR", "hardware_virtualisation", "kvm_limit_line"]

CPUINFO = Path("/proc/cpuinfo")
INTERNAL_ERROR = "KVM internal error"
_FLAGS = re.compile(r"^flags\s*:(.*)$", re.MULTILINE)
_RIP = re.compile(r"\b[RE]IP=([0-9a-fA-F]+)")


def hardware_virtualisation(cpuinfo: str | None = None) -> bool:
    """Whether the CPU flags list ``vmx`` (Intel VT-x) or ``svm`` (AMD-V)."""
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text(errors="replace")
        except OSError:
            return True  # cannot tell: say nothing
    match = _FLAGS.search(cpuinfo)
    return match is None or bool({"vmx", "svm"} & set(match.group(1).split()))


def kvm_limit_line(
    qemu_stderr: str, *, ended_badly: bool, cpuinfo: str | None = None
) -> str | None:
    """The one line to show after a KVM run, or None. ``ended_badly``: the guest faulted,
    panicked or reset (a clean run needs no warning)."""
    if INTERNAL_ERROR in qemu_stderr:
        rip = _RIP.search(qemu_stderr)
        at = f" at RIP {int(rip.group(1), 16):#x}" if rip else ""
        return (
            f"KVM could not run the guest{at} ({INTERNAL_ERROR}, emulation failure): "
            "this host's KVM is the limit, not the kernel; run it with --accel tcg"
        )
    if ended_badly and not hardware_virtualisation(cpuinfo):
        return (
            "KVM here has no hardware virtualisation (no vmx/svm flag: a paravirtual or "
            "nested KVM) and fails on some 32-bit code a CPU runs (mov to CR0.PG, iret, "
            "int n): compare with --accel tcg"
        )
    return None
