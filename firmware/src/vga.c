/* VGA text mode: 80x25 cells of (character, attribute) at 0xB8000; CRTC cursor at 0x3D4. */
#include "lhv/vga.h"
#include "lhv/io.h"

#define VGA_COLS 80
#define VGA_ROWS 25
#define VGA_ATTR 0x07 /* light grey on black */
#define CRTC_INDEX 0x3d4
#define CRTC_DATA 0x3d5

static volatile uint16_t *const vga_buffer = (volatile uint16_t *)VGA_TEXT_BUFFER;
static unsigned int vga_row, vga_col;

static void vga_clear_row(unsigned int row)
{
	for (unsigned int col = 0; col < VGA_COLS; col++)
		vga_buffer[row * VGA_COLS + col] = (VGA_ATTR << 8) | ' ';
}

static void vga_move_cursor(void)
{
	uint16_t pos = (uint16_t)(vga_row * VGA_COLS + vga_col);

	outb(CRTC_INDEX, 0x0f);
	outb(CRTC_DATA, pos & 0xff);
	outb(CRTC_INDEX, 0x0e);
	outb(CRTC_DATA, pos >> 8);
}

void vga_init(void)
{
	for (unsigned int row = 0; row < VGA_ROWS; row++)
		vga_clear_row(row);
	vga_row = vga_col = 0;
	vga_move_cursor();
}

static void vga_newline(void)
{
	vga_col = 0;
	if (++vga_row < VGA_ROWS)
		return;
	for (unsigned int i = 0; i < (VGA_ROWS - 1) * VGA_COLS; i++)
		vga_buffer[i] = vga_buffer[i + VGA_COLS];
	vga_row = VGA_ROWS - 1;
	vga_clear_row(vga_row);
}

void vga_putc(char c)
{
	if (c == '\n') {
		vga_newline();
	} else {
		vga_buffer[vga_row * VGA_COLS + vga_col] = (VGA_ATTR << 8) | (uint8_t)c;
		if (++vga_col == VGA_COLS)
			vga_newline();
	}
	vga_move_cursor();
}
