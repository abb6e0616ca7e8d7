/* One TSS (one page) for the one CPU, filled as LHV and Pebbles do. */
#include "lhv/tss.h"
#include "lhv/gdt.h"
#include "lhv/io.h"
#include "lhv/layout.h"

_Static_assert(sizeof(struct tss) == TSS_LIMIT + 1, "TSS layout");
/* The offsets of the SDM's figures (Vol. 3A Figure 7-11 / 7-2); lhvdbg's tests compare the
 * DWARF of struct tss with its own layouts too. */
#ifdef __x86_64__
_Static_assert(__builtin_offsetof(struct tss, rsp0) == 0x04, "TSS RSP0");
_Static_assert(__builtin_offsetof(struct tss, ist) == 0x24, "TSS IST1");
#else
_Static_assert(__builtin_offsetof(struct tss, esp0) == 0x04, "TSS ESP0");
_Static_assert(__builtin_offsetof(struct tss, ss0) == 0x08, "TSS SS0");
#endif
_Static_assert(__builtin_offsetof(struct tss, iomap_base) == 0x66, "TSS I/O map base");

extern char boot_stack_top[];

__attribute__((aligned(PAGE_SIZE))) struct tss tss;

#ifdef __x86_64__
__attribute__((aligned(16))) static uint8_t ist1_stack[IST_STACK_SIZE];
__attribute__((aligned(16))) static uint8_t ist2_stack[IST_STACK_SIZE];
#else
__attribute__((aligned(PAGE_SIZE))) struct tss df_tss;
__attribute__((aligned(16))) static uint8_t df_task_stack[IST_STACK_SIZE];
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

#ifdef __x86_64__
uintptr_t tss_ist2_stack_top(void) { return (uintptr_t)(ist2_stack + sizeof(ist2_stack)); }
#else
/*
 * The #DF task (Intel SDM Vol. 3A §7.2, §6.12.2): a TSS of its own, entered through a
 * task gate, starting at `entry` on its own stack with the current page tables.
 */
void tss_init_df_task(uintptr_t entry)
{
	df_tss.eip = entry;
	df_tss.esp = (uintptr_t)(df_task_stack + sizeof(df_task_stack));
	df_tss.esp0 = df_tss.esp;
	df_tss.ss0 = SEL_KERNEL_DS;
	df_tss.cs = SEL_KERNEL_CS;
	df_tss.ss = df_tss.ds = df_tss.es = df_tss.fs = df_tss.gs = SEL_KERNEL_DS;
	df_tss.eflags = 0x2; /* bit 1 is always set; IF = 0 */
	df_tss.cr3 = read_cr3();
	df_tss.iomap_base = sizeof(df_tss);
	gdt_set_tss_at(SEL_DF_TSS, (uintptr_t)&df_tss, TSS_LIMIT);
}
#endif
