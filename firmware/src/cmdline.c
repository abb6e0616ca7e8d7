/*
 * Multiboot command line: QEMU passes "<kernel path> <-append text>", GRUB "<path> <args>".
 * Run settings here; fault-injection words go to lhv/fault.h.
 */
#include "lhv/cmdline.h"
#include "lhv/fault.h"

static bool word_is_space(char c) { return c == ' ' || c == '\t'; }

/* If word starts with key, parse the decimal number after it into *out (if >= min). */
static void parse_number(const char *word, const char *key, uint32_t min, uint32_t *out)
{
	for (; *key; key++, word++)
		if (*word != *key)
			return;
	uint32_t v = 0;
	bool any = false;
	for (; *word >= '0' && *word <= '9'; word++, any = true)
		v = v * 10 + (uint32_t)(*word - '0');
	if (any && v >= min && (*word == '\0' || word_is_space(*word)))
		*out = v;
}

void cmdline_parse(const char *cmdline, struct run_settings *s)
{
	if (!cmdline)
		return;
	for (const char *p = cmdline; *p;) {
		while (word_is_space(*p))
			p++;
		parse_number(p, "ticks=", 1, &s->ticks);
		parse_number(p, "every=", 1, &s->tick_every);
		parse_number(p, "hz=", 19, &s->pit_hz); /* the PIT divisor is 16 bits */
		parse_number(p, "softint=", 0, &s->soft_int);
		const char *word = p;
		while (*p && !word_is_space(*p))
			p++;
		fault_parse_word(word, (unsigned int)(p - word));
	}
}
