/* Run settings: the variant's defaults, overridden by `key=value` words on the command line. */
#ifndef LHV_CMDLINE_H
#define LHV_CMDLINE_H

#include "lhv/types.h"

struct run_settings {
	uint32_t ticks;      /* ticks=M: exit after M PIT ticks */
	uint32_t tick_every; /* every=N: print a tick line every N ticks */
	uint32_t pit_hz;     /* hz=H: PIT frequency */
	uint32_t soft_int;   /* softint=0|1: run the `int $0x30` round trip */
};

/* Update s from the words of cmdline (NULL: no command line); unknown words are ignored. */
void cmdline_parse(const char *cmdline, struct run_settings *s);

#endif
