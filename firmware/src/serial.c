/* COM1 serial port: a 16550 UART at 0x3F8 (register offsets from its data sheet). */
#include "lhv/serial.h"
#include "lhv/io.h"

#define UART_DATA 0 /* DLAB=0: transmit holding register; DLAB=1: divisor low */
#define UART_IER 1  /* DLAB=0: interrupt enable; DLAB=1: divisor high */
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define LCR_DLAB 0x80
#define LCR_8N1 0x03
#define LSR_THR_EMPTY 0x20
#define UART_CLOCK 115200

void serial_init(void)
{
	uint16_t divisor = UART_CLOCK / 115200;

	outb(COM1_PORT + UART_IER, 0x00); /* no UART interrupts: output is polled */
	outb(COM1_PORT + UART_LCR, LCR_DLAB);
	outb(COM1_PORT + UART_DATA, divisor & 0xff);
	outb(COM1_PORT + UART_IER, divisor >> 8);
	outb(COM1_PORT + UART_LCR, LCR_8N1);
	outb(COM1_PORT + UART_FCR, 0xc7); /* enable and clear FIFOs */
	outb(COM1_PORT + UART_MCR, 0x03); /* DTR, RTS */
}

void serial_putc(char c)
{
	if (c == '\n')
		serial_putc('\r');
	while (!(inb(COM1_PORT + UART_LSR) & LSR_THR_EMPTY))
		;
	outb(COM1_PORT + UART_DATA, (uint8_t)c);
}
