/* Ring 3 (`user` on the command line): the kernel drops to CPL 3 and lets IRQs come. */
#ifndef LHV_USER_H
#define LHV_USER_H

#include "lhv/cmdline.h"
#include "lhv/types.h"

extern volatile bool user_mode_active;

/*
 * Make every mapped page user-accessible, then `iret` to CPL 3 with the user code and
 * data selectors, IF = 1, on a stack of its own. The code spins (or runs `int
 * int_vector` once when it is not 0); PIT interrupts count ticks and end the run.
 */
NORETURN void user_enter(const struct run_settings *s, uint8_t int_vector);
/* From the PIT handler while in user mode: tick lines, and the end of the run. */
void user_pit_tick(void);

#endif
