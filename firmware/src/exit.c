/* Ending the run through QEMU's isa-debug-exit device (values in lhv/exit.h). */
#include "lhv/exit.h"
#include "lhv/console.h"
#include "lhv/io.h"

void lhv_exit(enum lhv_exit_code code)
{
	outl(LHV_EXIT_PORT, code);
	/* Still running: there is no isa-debug-exit device (real hardware, Bochs, GRUB tests). */
	kprintf("exit: no isa-debug-exit device at port 0x%x (code 0x%x); halting\n",
		LHV_EXIT_PORT, code);
	for (;;) {
		cli();
		hlt();
	}
}
