/*
 * Leaving QEMU: a write to QEMU's isa-debug-exit device (started with
 * `-device isa-debug-exit,iobase=0xf4,iosize=0x04`) ends QEMU with exit status
 * (value << 1) | 1. Each ending has its own value; they are an enum so that they are in
 * the DWARF of every build and tools can read them from the ELF.
 *
 *   value  QEMU status  meaning
 *   0x10   33           clean exit: all PIT ticks counted
 *   0x11   35           the vector-8 (#DF) handler ran
 *   0x12   37           any other unexpected exception or interrupt (panic)
 *
 * A triple fault under `-no-reboot` ends QEMU with status 0 (no value is written).
 * Without the device the write does nothing: the firmware prints a last line and halts.
 */
#ifndef LHV_EXIT_H
#define LHV_EXIT_H

#include "lhv/abi.h"
#include "lhv/types.h"

#define LHV_EXIT_PORT LHV_PORT_DEBUG_EXIT

enum lhv_exit_code {
	LHV_EXIT_OK = 0x10,
	LHV_EXIT_DOUBLE_FAULT = 0x11,
	LHV_EXIT_PANIC = 0x12,
};

NORETURN void lhv_exit(enum lhv_exit_code code);

#endif
