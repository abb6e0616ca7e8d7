"""lhvdbg: a QEMU-GDB debugging workbench for bare-metal x86 hypervisor and kernel code."""

__version__ = "0.1.0"
