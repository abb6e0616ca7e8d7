/* The console: every character goes to COM1 and to the VGA text screen. */
#ifndef LHV_CONSOLE_H
#define LHV_CONSOLE_H

#include "lhv/types.h"

void console_init(void);
void console_putc(char c);
void console_puts(const char *s);
/*
 * printf subset: %d %u %x %p %s %c %%, flag '0', a field width, and the length
 * modifiers l (long) and ll (long long; hexadecimal only, so i386 needs no libgcc).
 */
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
