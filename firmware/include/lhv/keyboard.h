/* The PS/2 keyboard on IRQ1. */
#ifndef LHV_KEYBOARD_H
#define LHV_KEYBOARD_H

#include "lhv/types.h"

extern volatile unsigned long keyboard_irqs;
extern volatile uint8_t keyboard_last_scancode;

void keyboard_irq(void);

#endif
