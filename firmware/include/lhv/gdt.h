/* The global descriptor table (layout in lhv/layout.h). */
#ifndef LHV_GDT_H
#define LHV_GDT_H

#include "lhv/layout.h"
#include "lhv/types.h"

/* A pseudo-descriptor for lgdt/lidt: 16-bit limit, then the linear base. */
struct __attribute__((packed)) table_register {
	uint16_t limit;
	uintptr_t base;
};

extern uint64_t gdt[GDT_ENTRIES];
/* The fault cases' extra descriptors, placed right after gdt by the linker scripts. */
extern uint64_t gdt_extra[GDT_EXTRA_ENTRIES];

/* Write the TSS descriptor (available TSS, type 0x89) at SEL_TSS. */
void gdt_set_tss(uintptr_t base, uint32_t limit);
/* The same at another selector (i386: the #DF task's TSS at SEL_DF_TSS). */
void gdt_set_tss_at(uint16_t sel, uintptr_t base, uint32_t limit);
/* True when gdt_extra starts where gdt ends (GDTR can cover both). */
bool gdt_extra_follows(void);
/* lgdt (limit GDT_LIMIT, or GDT_LIMIT_WITH_EXTRA), then reload CS and the data segments. */
void gdt_load(bool with_extra);

#endif
