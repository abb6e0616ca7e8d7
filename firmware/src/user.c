/*
 * Ring 3. The kernel builds the frame an inter-privilege `iret` pops (Intel SDM Vol. 3A
 * §6.12.1: SS, ESP/RSP, EFLAGS, CS, EIP/RIP) and returns into user code; from then on
 * every interrupt arrives with a privilege change, so the CPU takes RSP0 (amd64) or
 * SS0:ESP0 (i386) from the TSS.
 */
#include "lhv/user.h"
#include "lhv/console.h"
#include "lhv/exit.h"
#include "lhv/layout.h"
#include "lhv/paging.h"
#include "lhv/pit.h"
#include "lhv/lapic.h"

#define EFLAGS_RESERVED 0x2
#define EFLAGS_IF 0x200

volatile bool user_mode_active;
static struct run_settings settings;
static unsigned long printed;

__attribute__((aligned(16))) static uint8_t user_stack[PAGE_SIZE];
/* `int n; jmp .` written at run time, since n comes from the command line. */
__attribute__((aligned(16))) static uint8_t user_int_code[4];

/* The ring-3 program: wait for interrupts (hlt is privileged). */
NORETURN static void user_spin(void)
{
	for (;;)
		__asm__ volatile("pause");
}

void user_enter(const struct run_settings *s, uint8_t int_vector)
{
	uintptr_t entry = (uintptr_t)user_spin;
	uintptr_t stack = (uintptr_t)(user_stack + sizeof(user_stack));

	settings = *s;
	paging_allow_user();
	if (int_vector) {
		user_int_code[0] = 0xcd; /* int imm8 */
		user_int_code[1] = int_vector;
		user_int_code[2] = 0xeb; /* jmp . */
		user_int_code[3] = 0xfe;
		entry = (uintptr_t)user_int_code;
	}
	kprintf("user: iret to CPL 3 at %p (cs=0x%x ss=0x%x), IF=1\n", (void *)entry, SEL_USER_CS,
		SEL_USER_DS);
	user_mode_active = true;
#ifdef __x86_64__
	__asm__ volatile("pushq %[ss]\n\t"
			 "pushq %[sp]\n\t"
			 "pushq %[flags]\n\t"
			 "pushq %[cs]\n\t"
			 "pushq %[ip]\n\t"
			 "iretq"
			 :
			 : [ss] "i"(SEL_USER_DS), [sp] "r"(stack),
			   [flags] "i"(EFLAGS_RESERVED | EFLAGS_IF), [cs] "i"(SEL_USER_CS),
			   [ip] "r"(entry)
			 : "memory");
#else
	/* Data segments the user may use; the kernel runs with them too (flat, DPL 3). */
	__asm__ volatile("movw %w[ds], %%ds\n\t"
			 "movw %w[ds], %%es\n\t"
			 "movw %w[ds], %%fs\n\t"
			 "movw %w[ds], %%gs\n\t"
			 "pushl %[ss]\n\t"
			 "pushl %[sp]\n\t"
			 "pushl %[flags]\n\t"
			 "pushl %[cs]\n\t"
			 "pushl %[ip]\n\t"
			 "iret"
			 :
			 : [ds] "r"(SEL_USER_DS), [ss] "i"(SEL_USER_DS), [sp] "r"(stack),
			   [flags] "i"(EFLAGS_RESERVED | EFLAGS_IF), [cs] "i"(SEL_USER_CS),
			   [ip] "r"(entry)
			 : "memory");
#endif
	__builtin_unreachable();
}

void user_pit_tick(void)
{
	unsigned long now = pit_ticks;

	for (unsigned long t = printed + 1; t <= now && t <= settings.ticks; t++)
		if (t % settings.tick_every == 0)
			kprintf("tick %lu\n", t);
	printed = now;
	if (now >= settings.ticks) {
		kprintf("done: %lu PIT ticks, %lu LAPIC ticks (user mode)\n", pit_ticks, lapic_ticks);
		lhv_exit(LHV_EXIT_OK);
	}
}
