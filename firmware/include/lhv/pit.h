/* The 8254 programmable interval timer, channel 0 (IRQ0). */
#ifndef LHV_PIT_H
#define LHV_PIT_H

#include "lhv/types.h"

#define TIMER_RATE 1193182     /* input clock, Hz */
#define TIMER_SQUARE_WAVE 0x36 /* channel 0, lobyte/hibyte, mode 3 */

extern volatile unsigned long pit_ticks;

void pit_init(uint32_t hz);
void pit_irq(void);

#endif
