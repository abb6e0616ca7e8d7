/* The local APIC and its timer (Intel SDM Vol. 3A ch. 11). */
#ifndef LHV_LAPIC_H
#define LHV_LAPIC_H

#include "lhv/types.h"

extern volatile unsigned long lapic_ticks;

/* Enable the LAPIC and start its timer, periodic on `vector`; false if there is no APIC. */
bool lapic_init(uint8_t vector, uint32_t initial_count);
void lapic_eoi(void);
void lapic_timer_irq(void);

#endif
