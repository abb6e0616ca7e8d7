/*
 * I/O APIC: one redirection entry written through the index/data window (82093AA data
 * sheet §3.2: IOREGSEL at +0x00, IOWIN at +0x10; entry n at registers 0x10 + 2n, low
 * dword first). The page is identity-mapped like all of 0..4 GiB.
 */
#include "lhv/ioapic.h"
#include "lhv/io.h"

#define IOAPIC_BASE 0xfec00000u
#define IOAPIC_IOREGSEL 0x00
#define IOAPIC_IOWIN 0x10
#define IOAPIC_REDIR(pin) (0x10 + 2 * (pin))

static void ioapic_write(uint32_t reg, uint32_t v)
{
	mmio_write32(IOAPIC_BASE + IOAPIC_IOREGSEL, reg);
	mmio_write32(IOAPIC_BASE + IOAPIC_IOWIN, v);
}

void ioapic_route(unsigned int pin, uint8_t vector)
{
	ioapic_write(IOAPIC_REDIR(pin) + 1, 0); /* destination APIC ID 0 (bits 56-63) */
	ioapic_write(IOAPIC_REDIR(pin), vector); /* fixed, physical, active high, edge, unmasked */
}
