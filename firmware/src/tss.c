/* One TSS (one page) for the one CPU, filled as LHV and Pebbles do. */
#include "lhv/tss.h"
#include "lhv/gdt.h"
#include "lhv/layout.h"

_Static_assert(sizeof(struct tss) == TSS_LIMIT + 1, "TSS layout");

extern char boot_stack_top[];

__attribute__((aligned(PAGE_SIZE))) struct tss tss;

#ifdef __x86_64__
__attribute__((aligned(16))) static uint8_t ist1_stack[IST_STACK_SIZE];
#endif

void tss_init(void)
{
#ifdef __x86_64__
	tss.rsp0 = (uintptr_t)boot_stack_top;
	tss.ist[0] = (uintptr_t)(ist1_stack + sizeof(ist1_stack));
#else
	tss.esp0 = (uintptr_t)boot_stack_top;
	tss.ss0 = SEL_KERNEL_DS;
#endif
	tss.iomap_base = sizeof(tss); /* no I/O permission bitmap */
	gdt_set_tss((uintptr_t)&tss, TSS_LIMIT);
}

void tss_load(void)
{
	__asm__ volatile("ltr %w0" : : "r"((uint16_t)SEL_TSS) : "memory");
}
