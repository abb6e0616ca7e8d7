"""I/O: the QEMU process, QMP, gdb/MI, the live Target."""
