"""The one line about this host's KVM (lhvdbg.machine.kvmhost)."""

from __future__ import annotations

from lhvdbg.machine.kvmhost import hardware_virtualisation, kvm_limit_line

VMX = "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr vmx ept\n"
PVM = "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr hypervisor\n"
CRASH = (
    "KVM internal error. Suberror: 1\nemulation failure\n"
    "EAX=00000000 EBX=00000000\nEIP=00100020 EFL=00000002 [-------] CPL=0 II=0 A20=1\n"
)


def test_hardware_virtualisation_from_the_flags() -> None:
    assert hardware_virtualisation(VMX) is True
    assert hardware_virtualisation(PVM) is False
    assert hardware_virtualisation("no flags line\n") is True  # cannot tell: say nothing


def test_an_internal_error_is_always_said() -> None:
    line = kvm_limit_line(CRASH, ended_badly=False, cpuinfo=VMX)
    assert line is not None and line.startswith(
        "KVM could not run the guest at RIP 0x100020 (KVM internal error, emulation failure)"
    )
    assert line.endswith("run it with --accel tcg") and "\n" not in line


def test_a_bad_end_without_vmx_or_svm_is_said_once() -> None:
    line = kvm_limit_line("", ended_badly=True, cpuinfo=PVM)
    assert line is not None and "no hardware virtualisation" in line and "\n" not in line
    assert kvm_limit_line("", ended_badly=False, cpuinfo=PVM) is None
    assert kvm_limit_line("", ended_badly=True, cpuinfo=VMX) is None
