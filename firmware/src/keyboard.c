/* Keyboard IRQ1: read the scan code from the 8042 data port (which releases the IRQ). */
#include "lhv/keyboard.h"
#include "lhv/io.h"
#include "lhv/pic.h"

#define KBD_DATA 0x60

volatile unsigned long keyboard_irqs;
volatile uint8_t keyboard_last_scancode;

void keyboard_irq(void)
{
	keyboard_last_scancode = inb(KBD_DATA);
	keyboard_irqs++;
	pic_eoi(1);
}
