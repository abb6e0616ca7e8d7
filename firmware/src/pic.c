/*
 * 8259A PIC programming (Intel 8259A data sheet; the sequence Pebbles' pic_init uses):
 * ICW1 starts initialisation, ICW2 is the vector base, ICW3 the cascade wiring, ICW4
 * selects 8086 mode. The BIOS leaves the master at base 0x08, on top of the CPU's
 * exception vectors, so IRQ0 would arrive as vector 8.
 */
#include "lhv/pic.h"
#include "lhv/io.h"

#define ICW1_INIT 0x10
#define ICW1_ICW4 0x01
#define ICW3_MASTER_SLAVE_ON_IRQ2 0x04
#define ICW3_SLAVE_ID 0x02
#define ICW4_8086 0x01
#define OCW3_READ_ISR 0x0b

void pic_init(uint8_t master_base, uint8_t slave_base, uint16_t mask)
{
	outb(PIC_MASTER_CMD, ICW1_INIT | ICW1_ICW4);
	io_wait();
	outb(PIC_SLAVE_CMD, ICW1_INIT | ICW1_ICW4);
	io_wait();
	outb(PIC_MASTER_DATA, master_base);
	io_wait();
	outb(PIC_SLAVE_DATA, slave_base);
	io_wait();
	outb(PIC_MASTER_DATA, ICW3_MASTER_SLAVE_ON_IRQ2);
	io_wait();
	outb(PIC_SLAVE_DATA, ICW3_SLAVE_ID);
	io_wait();
	outb(PIC_MASTER_DATA, ICW4_8086);
	io_wait();
	outb(PIC_SLAVE_DATA, ICW4_8086);
	io_wait();
	outb(PIC_MASTER_DATA, mask & 0xff);
	outb(PIC_SLAVE_DATA, mask >> 8);
}

void pic_eoi(unsigned int irq)
{
	if (irq >= 8)
		outb(PIC_SLAVE_CMD, PIC_EOI);
	outb(PIC_MASTER_CMD, PIC_EOI);
}

/* In-service registers (slave in the high byte), via OCW3. */
uint16_t pic_read_isr(void)
{
	outb(PIC_MASTER_CMD, OCW3_READ_ISR);
	outb(PIC_SLAVE_CMD, OCW3_READ_ISR);
	return (uint16_t)(inb(PIC_SLAVE_CMD) << 8 | inb(PIC_MASTER_CMD));
}
