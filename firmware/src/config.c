/*
 * The variant's configuration: the only translation unit compiled once per variant.
 * The Makefile passes `-include variants/<name>.h -DLHV_VARIANT_NAME="<name>"`.
 */
#include "lhv/config.h"

#ifndef LHV_VARIANT_NAME
#error "LHV_VARIANT_NAME must be set by the Makefile"
#endif

const struct lhv_config lhv_config = {
	.variant = LHV_VARIANT_NAME,
	.remap_pic = LHV_REMAP_PIC,
	.load_tr = LHV_LOAD_TR,
	.timer_ist = LHV_TIMER_IST,
	.df_ist = LHV_DF_IST,
	.exception_ist = LHV_EXCEPTION_IST,
	.timer_gate = LHV_TIMER_GATE,
	.exception_gates = LHV_EXCEPTION_GATES,
	.iret_bad_selector = LHV_IRET_BAD_SELECTOR,
	.stack_overflow = LHV_STACK_OVERFLOW,
	.pit_hz = LHV_PIT_HZ,
	.ticks = LHV_TICKS,
	.tick_every = LHV_TICK_EVERY,
	.lapic_count = LHV_LAPIC_COUNT,
};
