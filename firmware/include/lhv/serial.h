/* COM1 serial port (0x3F8), 115200 baud, 8N1, polled output. */
#ifndef LHV_SERIAL_H
#define LHV_SERIAL_H

#define COM1_PORT 0x3f8

void serial_init(void);
void serial_putc(char c);

#endif
