/* Console output to serial and VGA, and a small printf without libc. */
#include "lhv/console.h"
#include "lhv/serial.h"
#include "lhv/vga.h"

void console_init(void)
{
	serial_init();
	vga_init();
}

void console_putc(char c)
{
	serial_putc(c);
	vga_putc(c);
}

void console_puts(const char *s)
{
	while (*s)
		console_putc(*s++);
}

/* Digits of v in base 16 by shifting: no 64-bit division, so no libgcc on i386. */
static unsigned int format_hex(char *buf, unsigned long long v)
{
	unsigned int n = 0;

	do {
		buf[n++] = "0123456789abcdef"[v & 0xf];
		v >>= 4;
	} while (v);
	return n;
}

/* Digits of v in base 10; unsigned long is the native word, so this divides natively. */
static unsigned int format_dec(char *buf, unsigned long v)
{
	unsigned int n = 0;

	do {
		buf[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return n;
}

/* Print reversed digits, padded to width with pad. */
static void emit_number(const char *digits, unsigned int n, bool negative, unsigned int width, char pad)
{
	unsigned int len = n + (negative ? 1 : 0);

	if (negative && pad == '0')
		console_putc('-');
	for (; len < width; len++)
		console_putc(pad);
	if (negative && pad != '0')
		console_putc('-');
	while (n)
		console_putc(digits[--n]);
}

static void kvprintf(const char *fmt, va_list ap)
{
	char digits[24];

	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			console_putc(*fmt);
			continue;
		}
		char pad = ' ';
		unsigned int width = 0, longness = 0;

		if (*++fmt == '0') {
			pad = '0';
			fmt++;
		}
		for (; *fmt >= '0' && *fmt <= '9'; fmt++)
			width = width * 10 + (unsigned int)(*fmt - '0');
		for (; *fmt == 'l'; fmt++)
			longness++;

		switch (*fmt) {
		case 'd': {
			long v = longness ? va_arg(ap, long) : va_arg(ap, int);
			unsigned long mag = v < 0 ? 0UL - (unsigned long)v : (unsigned long)v;
			emit_number(digits, format_dec(digits, mag), v < 0, width, pad);
			break;
		}
		case 'u': {
			unsigned long v = longness ? va_arg(ap, unsigned long) : va_arg(ap, unsigned int);
			emit_number(digits, format_dec(digits, v), false, width, pad);
			break;
		}
		case 'x': {
			unsigned long long v = longness > 1   ? va_arg(ap, unsigned long long)
					       : longness ? va_arg(ap, unsigned long)
							  : va_arg(ap, unsigned int);
			emit_number(digits, format_hex(digits, v), false, width, pad);
			break;
		}
		case 'p':
			console_puts("0x");
			emit_number(digits, format_hex(digits, (uintptr_t)va_arg(ap, void *)), false,
				    2 * sizeof(void *), '0');
			break;
		case 's': {
			const char *s = va_arg(ap, const char *);
			console_puts(s ? s : "(null)");
			break;
		}
		case 'c':
			console_putc((char)va_arg(ap, int));
			break;
		case '%':
			console_putc('%');
			break;
		default: /* unknown conversion: show it as written */
			console_putc('%');
			if (!*fmt)
				return;
			console_putc(*fmt);
			break;
		}
	}
}

void kprintf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	kvprintf(fmt, ap);
	va_end(ap);
}
