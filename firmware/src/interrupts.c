/* The C side of every interrupt: route by vector to the device or exception handler. */
#include "lhv/interrupts.h"
#include "lhv/config.h"
#include "lhv/console.h"
#include "lhv/exceptions.h"
#include "lhv/fault.h"
#include "lhv/keyboard.h"
#include "lhv/lapic.h"
#include "lhv/layout.h"
#include "lhv/pic.h"
#include "lhv/pit.h"
#include "lhv/user.h"

volatile unsigned long soft_test_calls;
volatile unsigned long spurious_irq7;

/* The `int $0x30` round trip: answer with the caller's accumulator plus one. */
static void soft_test(struct int_frame *f)
{
	soft_test_calls++;
#ifdef __x86_64__
	f->rax += 1;
#else
	f->eax += 1;
#endif
}

/*
 * IRQ7 also arrives when an IRQ vanished before the CPU acknowledged it. The 8259 then
 * reports IRQ7 without setting its in-service bit; such a spurious IRQ gets no EOI.
 */
static void irq7(void)
{
	if (!(pic_read_isr() & 0x80)) {
		spurious_irq7++;
		return;
	}
	pic_eoi(7);
}

/* iret-bad-ss variant: corrupt the frame the first timer interrupt returns through. */
static void maybe_corrupt_return_frame(struct int_frame *f)
{
	static bool done;

	if (!lhv_config.iret_bad_selector || done)
		return;
	done = true;
#ifdef __x86_64__
	f->ss = lhv_config.iret_bad_selector; /* iretq pops SS even without a privilege change */
#else
	f->cs = lhv_config.iret_bad_selector; /* a same-privilege iret pops no SS */
#endif
}

void isr_dispatch(struct int_frame *f)
{
	switch (f->vector) {
	case VEC_DOUBLE_FAULT:
		double_fault(f);
	case VEC_PIT:
		pit_irq();
		maybe_corrupt_return_frame(f);
		fault_corrupt_return_frame(f);
		if (user_mode_active)
			user_pit_tick();
		return;
	case VEC_KEYBOARD:
		keyboard_irq();
		return;
	case VEC_LAPIC_TIMER:
		lapic_timer_irq();
		return;
	case VEC_IRQ7:
		irq7();
		return;
	case VEC_SOFT_TEST:
		soft_test(f);
		return;
	case VEC_LAPIC_SPURIOUS: /* the LAPIC's spurious vector needs no EOI */
		return;
	default:
		unexpected_interrupt(f);
	}
}
