/* Ending the run through QEMU's isa-debug-exit device (values in lhv/exit.h). */
#include "lhv/exit.h"
#include "lhv/console.h"
#include "lhv/io.h"

void lhv_exit(enum lhv_exit_code code)
{
	/* Said before the write: QEMU 7.2 exits at the write, QEMU >= 9.1 a moment later
	 * (a shutdown request), so nothing after it is sure to be seen. */
	kprintf("exit: code 0x%x to the isa-debug-exit device at port 0x%x\n", code,
		LHV_EXIT_PORT);
	outl(LHV_EXIT_PORT, code);
	/* Still running: no such device (real hardware, Bochs, GRUB tests), or QEMU finishing
	 * the shutdown. Stop here. */
	for (;;) {
		cli();
		hlt();
	}
}
