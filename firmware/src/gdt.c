/*
 * GDT with LHV's selectors. Code/data descriptors are constants (Intel SDM Vol. 3A
 * §3.4.5: limit 15:0, base 23:0, access byte at bits 40-47, limit 19:16, flags G/D/L at
 * bits 52-55, base 31:24). The entry code loads this same table before C runs; the TSS
 * descriptor needs the TSS address split into fields, so it is written at run time.
 */
#include "lhv/gdt.h"

#define DESC_FLAT_LIMIT 0x000f00000000ffffULL /* limit 0xfffff */
#define DESC_G (1ULL << 55)                   /* 4 KiB granularity */
#define DESC_DB (1ULL << 54)                  /* 32-bit default operand size */
#define DESC_L (1ULL << 53)                   /* 64-bit code */
#define DESC_ACCESS(a) ((uint64_t)(a) << 40)
#define ACCESS_CODE_DPL0 0x9a /* present, DPL 0, code, execute/read */
#define ACCESS_DATA_DPL0 0x92 /* present, DPL 0, data, read/write */
#define ACCESS_CODE_DPL3 0xfa
#define ACCESS_DATA_DPL3 0xf2
#define ACCESS_TSS_AVAILABLE 0x89 /* present, DPL 0, system type 9: available TSS */

#define FLAT32(access) (DESC_FLAT_LIMIT | DESC_G | DESC_DB | DESC_ACCESS(access))
#define FLAT64(access) (DESC_FLAT_LIMIT | DESC_G | DESC_L | DESC_ACCESS(access))

__attribute__((aligned(16))) uint64_t gdt[GDT_ENTRIES] = {
#ifdef __x86_64__
	[SEL_KERNEL_CS / 8] = FLAT64(ACCESS_CODE_DPL0),
	[SEL_KERNEL_CS32 / 8] = FLAT32(ACCESS_CODE_DPL0),
	[SEL_KERNEL_DS / 8] = FLAT32(ACCESS_DATA_DPL0),
	[SEL_USER_CS / 8] = FLAT64(ACCESS_CODE_DPL3),
	[SEL_USER_DS / 8] = FLAT32(ACCESS_DATA_DPL3),
#else
	[SEL_KERNEL_CS / 8] = FLAT32(ACCESS_CODE_DPL0),
	[SEL_KERNEL_DS / 8] = FLAT32(ACCESS_DATA_DPL0),
	[SEL_USER_CS / 8] = FLAT32(ACCESS_CODE_DPL3),
	[SEL_USER_DS / 8] = FLAT32(ACCESS_DATA_DPL3),
#endif
};

void gdt_set_tss(uintptr_t base, uint32_t limit)
{
	uint64_t b = (uint64_t)base;

	gdt[SEL_TSS / 8] = (limit & 0xffffULL) | ((b & 0xffffffULL) << 16) |
			   DESC_ACCESS(ACCESS_TSS_AVAILABLE) | ((uint64_t)(limit >> 16 & 0xf) << 48) |
			   ((b >> 24 & 0xff) << 56);
#ifdef __x86_64__
	gdt[SEL_TSS / 8 + 1] = b >> 32; /* a 64-bit TSS descriptor is 16 bytes */
#endif
}

static void load_data_segments(uint16_t selector)
{
	__asm__ volatile("movw %0, %%ds\n\t"
			 "movw %0, %%es\n\t"
			 "movw %0, %%ss\n\t"
			 "movw %0, %%fs\n\t"
			 "movw %0, %%gs"
			 :
			 : "r"(selector)
			 : "memory");
}

void gdt_load(void)
{
	struct table_register gdtr = {.limit = sizeof(gdt) - 1, .base = (uintptr_t)gdt};

	__asm__ volatile("lgdt %0" : : "m"(gdtr));
#ifdef __x86_64__
	/* No far jump to an immediate in 64-bit mode: return far to the next instruction. */
	__asm__ volatile("pushq %[cs]\n\t"
			 "leaq 1f(%%rip), %%rax\n\t"
			 "pushq %%rax\n\t"
			 "lretq\n"
			 "1:"
			 :
			 : [cs] "i"(SEL_KERNEL_CS)
			 : "rax", "memory");
#else
	__asm__ volatile("ljmp %[cs], $1f\n"
			 "1:"
			 :
			 : [cs] "i"(SEL_KERNEL_CS)
			 : "memory");
#endif
	load_data_segments(SEL_KERNEL_DS);
}
