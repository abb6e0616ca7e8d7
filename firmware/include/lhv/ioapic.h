/* The I/O APIC at its default address (Intel 82093AA data sheet; ACPI MADT in QEMU). */
#ifndef LHV_IOAPIC_H
#define LHV_IOAPIC_H

#include "lhv/types.h"

#define IOAPIC_PIN_PIT 2 /* QEMU routes ISA IRQ0 (the PIT) to I/O APIC pin 2 */

/* Redirection entry `pin`: fixed delivery, edge, active high, to APIC ID 0, on `vector`. */
void ioapic_route(unsigned int pin, uint8_t vector);

#endif
