/*
 * The firmware's fixed numbers as C enums, so that the DWARF of every image carries them
 * and tools read them from the ELF instead of copying them: GDT selectors, interrupt
 * vectors and I/O ports. The values come from lhv/layout.h (shared with the assembly,
 * so preprocessor-only there); src/fault.c keeps one object of each type alive.
 */
#ifndef LHV_ABI_H
#define LHV_ABI_H

#include "lhv/layout.h"

/* GDT selectors (index * 8 | RPL). */
enum lhv_selector {
	LHV_SEL_NULL = 0,
	LHV_SEL_KERNEL_CS = SEL_KERNEL_CS,
#ifdef __x86_64__
	LHV_SEL_KERNEL_CS32 = SEL_KERNEL_CS32,
#endif
	LHV_SEL_KERNEL_DS = SEL_KERNEL_DS,
	LHV_SEL_TSS = SEL_TSS,
	LHV_SEL_USER_CS = SEL_USER_CS,
	LHV_SEL_USER_DS = SEL_USER_DS,
	LHV_SEL_NP_CODE = SEL_NP_CODE,
	LHV_SEL_NP_DATA = SEL_NP_DATA,
#ifndef __x86_64__
	LHV_SEL_DF_TSS = SEL_DF_TSS,
	LHV_SEL_SMALL_CODE = SEL_SMALL_CODE,
#endif
};

/* Interrupt vectors the firmware uses (no two with one value, so value -> name is one name;
 * the 8259 master base is LHV_VEC_PIT, IRQ0's vector). */
enum lhv_vector {
	LHV_VEC_DOUBLE_FAULT = VEC_DOUBLE_FAULT,
	LHV_VEC_PIT = VEC_PIT,
	LHV_VEC_KEYBOARD = VEC_KEYBOARD,
	LHV_VEC_LAPIC_TIMER = VEC_LAPIC_TIMER,
	LHV_VEC_IRQ7 = VEC_IRQ7,
	LHV_VEC_PIC_SLAVE_BASE = PIC_SLAVE_BASE,
	LHV_VEC_SOFT_TEST = VEC_SOFT_TEST,
	LHV_VEC_LAPIC_SPURIOUS = VEC_LAPIC_SPURIOUS,
};

/* I/O ports. */
enum lhv_port {
	LHV_PORT_PIC_MASTER = 0x20,
	LHV_PORT_PIC_SLAVE = 0xa0,
	LHV_PORT_PIT = 0x40,
	LHV_PORT_CMOS_INDEX = 0x70,
	LHV_PORT_CMOS_DATA = 0x71,
	LHV_PORT_DEBUG_EXIT = 0xf4, /* QEMU isa-debug-exit, see lhv/exit.h */
	LHV_PORT_COM1 = 0x3f8,
};

#endif
