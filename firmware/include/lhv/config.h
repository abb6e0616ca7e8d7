/*
 * Build configuration of one firmware variant, read at run time.
 *
 * A variant is a header in firmware/variants/ that overrides a few LHV_* macros; only
 * src/config.c is compiled per variant (with -include variants/<name>.h), and it turns
 * the macros into the one `lhv_config` object below. Everything else is compiled once
 * per architecture. Defaults here are the good build.
 */
#ifndef LHV_CONFIG_H
#define LHV_CONFIG_H

#include "lhv/types.h"

/* Initialise the 8259 PICs to bases 0x20/0x28. 0: leave the BIOS mapping (IRQ0 -> vector 8). */
#ifndef LHV_REMAP_PIC
#define LHV_REMAP_PIC 1
#endif
/* Execute `ltr` after building the TSS. 0: TR keeps its reset state (selector 0). */
#ifndef LHV_LOAD_TR
#define LHV_LOAD_TR 1
#endif
/* IST index (0 = none, amd64 only) of the PIT gate (0x20), the #DF gate, the other exceptions. */
#ifndef LHV_TIMER_IST
#define LHV_TIMER_IST 0
#endif
#ifndef LHV_DF_IST
#define LHV_DF_IST 0
#endif
#ifndef LHV_EXCEPTION_IST
#define LHV_EXCEPTION_IST 0
#endif
/* Install a present gate for the PIT vector 0x20. */
#ifndef LHV_TIMER_GATE
#define LHV_TIMER_GATE 1
#endif
/* Bit n set: exception vector n (0..31) gets a present gate. */
#ifndef LHV_EXCEPTION_GATES
#define LHV_EXCEPTION_GATES 0xffffffffu
#endif
/* Non-zero: after the first PIT interrupt, return with `iret` through a frame whose
 * stack segment (amd64) or code segment (i386) holds this selector. */
#ifndef LHV_IRET_BAD_SELECTOR
#define LHV_IRET_BAD_SELECTOR 0
#endif
/* Recurse without bound into the guard page below boot_stack (before `sti`). */
#ifndef LHV_STACK_OVERFLOW
#define LHV_STACK_OVERFLOW 0
#endif
/* Timer and run length; `ticks=M every=N hz=H` on the multiboot command line override. */
#ifndef LHV_PIT_HZ
#define LHV_PIT_HZ 100
#endif
#ifndef LHV_TICKS
#define LHV_TICKS 20
#endif
#ifndef LHV_TICK_EVERY
#define LHV_TICK_EVERY 5
#endif
/* LAPIC timer initial count with divide-by-16 (QEMU: 16 ns per count, so 10 ms). */
#ifndef LHV_LAPIC_COUNT
#define LHV_LAPIC_COUNT 625000
#endif

struct lhv_config {
	const char *variant;
	uint8_t remap_pic;
	uint8_t load_tr;
	uint8_t timer_ist;
	uint8_t df_ist;
	uint8_t exception_ist;
	uint8_t timer_gate;
	uint32_t exception_gates;
	uint16_t iret_bad_selector;
	uint8_t stack_overflow;
	uint32_t pit_hz;
	uint32_t ticks;
	uint32_t tick_every;
	uint32_t lapic_count;
};

extern const struct lhv_config lhv_config;

#endif
