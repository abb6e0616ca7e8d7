/* Handlers for the vector-8 gate and for everything unexpected; they end the run. */
#ifndef LHV_EXCEPTIONS_H
#define LHV_EXCEPTIONS_H

#include "lhv/interrupts.h"

/* Vector 8: print the frame as a #DF frame and judge whether an error code was pushed. */
NORETURN void double_fault(struct int_frame *frame);
/* Any other exception or interrupt without a handler: print it and exit (panic). */
NORETURN void unexpected_interrupt(struct int_frame *frame);

#endif
