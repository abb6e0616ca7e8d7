/* The task-state segment: the stacks the CPU switches to (Intel SDM Vol. 3A §7.2, §7.7). */
#ifndef LHV_TSS_H
#define LHV_TSS_H

#include "lhv/types.h"

#ifdef __x86_64__
struct __attribute__((packed)) tss {
	uint32_t reserved0;
	uint64_t rsp0; /* offset 4: stack for an interrupt that enters ring 0 from ring 3 */
	uint64_t rsp1;
	uint64_t rsp2;
	uint64_t reserved1;
	uint64_t ist[7]; /* offset 0x24: IST1..IST7, used by gates whose IST field is n */
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base; /* offset 0x66 */
};
#else
struct __attribute__((packed)) tss {
	uint16_t link, reserved0;
	uint32_t esp0; /* offset 4 */
	uint16_t ss0, reserved1; /* offset 8 */
	uint32_t esp1;
	uint16_t ss1, reserved2;
	uint32_t esp2;
	uint16_t ss2, reserved3;
	uint32_t cr3, eip, eflags, eax, ecx, edx, ebx, esp, ebp, esi, edi;
	uint16_t es, reserved4, cs, reserved5, ss, reserved6, ds, reserved7, fs, reserved8, gs,
		reserved9, ldt, reserved10;
	uint16_t trap;
	uint16_t iomap_base; /* offset 0x66 */
};
#endif

#define TSS_LIMIT 0x67

extern struct tss tss;

/* Fill the TSS and its GDT descriptor. */
void tss_init(void);
/* `ltr` with SEL_TSS: the CPU marks the descriptor busy. */
void tss_load(void);
#ifdef __x86_64__
/* The top of the IST2 stack (`df-ist=2` points tss.ist[1] there). */
uintptr_t tss_ist2_stack_top(void);
#else
/* The #DF task's TSS (SEL_DF_TSS): starts at entry on its own stack (`df-task`). */
extern struct tss df_tss;
void tss_init_df_task(uintptr_t entry);
#endif

#endif
