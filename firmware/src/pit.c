/* PIT channel 0 as a periodic tick source (the values Pebbles' timer_defines.h uses). */
#include "lhv/pit.h"
#include "lhv/io.h"
#include "lhv/pic.h"

#define PIT_CHANNEL0 0x40
#define PIT_MODE 0x43

volatile unsigned long pit_ticks;

void pit_init(uint32_t hz)
{
	uint32_t divisor = TIMER_RATE / hz;

	if (divisor > 0xffff)
		divisor = 0xffff;
	outb(PIT_MODE, TIMER_SQUARE_WAVE);
	outb(PIT_CHANNEL0, divisor & 0xff);
	outb(PIT_CHANNEL0, (divisor >> 8) & 0xff);
}

void pit_irq(void)
{
	pit_ticks++;
	pic_eoi(0);
}
