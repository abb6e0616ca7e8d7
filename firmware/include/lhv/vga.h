/* VGA text mode console at 0xB8000, 80x25. */
#ifndef LHV_VGA_H
#define LHV_VGA_H

#define VGA_TEXT_BUFFER 0xb8000

void vga_init(void);
void vga_putc(char c);

#endif
