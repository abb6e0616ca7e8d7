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

/* Write the TSS descriptor (available TSS, type 0x89) at SEL_TSS. */
void gdt_set_tss(uintptr_t base, uint32_t limit);
/* lgdt, then reload CS and the data segment registers. */
void gdt_load(void);

#endif
