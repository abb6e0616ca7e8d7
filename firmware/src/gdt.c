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

/* .data.gdt then .data.gdt_extra: the linker scripts place them back to back. */
__attribute__((aligned(16), section(".data.gdt"))) uint64_t gdt[GDT_ENTRIES] = {
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

#define ACCESS_NP(a) ((a) & 0x7f) /* P = 0 */
#define DESC_BYTE_LIMIT_4K 0x0fffULL /* limit 0xfff, G = 0: 4 KiB */

/* The fault cases' descriptors (lhv/layout.h); GDTR covers them only in fault mode. */
__attribute__((aligned(8), section(".data.gdt_extra"))) uint64_t gdt_extra[GDT_EXTRA_ENTRIES] = {
#ifdef __x86_64__
	[(SEL_NP_CODE / 8) - GDT_ENTRIES] = FLAT64(ACCESS_NP(ACCESS_CODE_DPL0)),
	[(SEL_NP_DATA / 8) - GDT_ENTRIES] = FLAT32(ACCESS_NP(ACCESS_DATA_DPL0)),
#else
	[(SEL_DF_TSS / 8) - GDT_ENTRIES] = 0, /* tss_init_df_task */
	[(SEL_NP_CODE / 8) - GDT_ENTRIES] = FLAT32(ACCESS_NP(ACCESS_CODE_DPL0)),
	[(SEL_NP_DATA / 8) - GDT_ENTRIES] = FLAT32(ACCESS_NP(ACCESS_DATA_DPL0)),
	[(SEL_SMALL_CODE / 8) - GDT_ENTRIES] =
		DESC_BYTE_LIMIT_4K | DESC_DB | DESC_ACCESS(ACCESS_CODE_DPL0),
#endif
};

/* The descriptor at selector sel, in gdt or gdt_extra. */
static uint64_t *descriptor_slot(uint16_t sel)
{
	unsigned int index = sel / 8;

	return index < GDT_ENTRIES ? &gdt[index] : &gdt_extra[index - GDT_ENTRIES];
}

void gdt_set_tss_at(uint16_t sel, uintptr_t base, uint32_t limit)
{
	uint64_t b = (uint64_t)base;
	uint64_t *slot = descriptor_slot(sel);

	slot[0] = (limit & 0xffffULL) | ((b & 0xffffffULL) << 16) |
			   DESC_ACCESS(ACCESS_TSS_AVAILABLE) | ((uint64_t)(limit >> 16 & 0xf) << 48) |
			   ((b >> 24 & 0xff) << 56);
#ifdef __x86_64__
	slot[1] = b >> 32; /* a 64-bit TSS descriptor is 16 bytes */
#endif
}

void gdt_set_tss(uintptr_t base, uint32_t limit) { gdt_set_tss_at(SEL_TSS, base, limit); }

bool gdt_extra_follows(void) { return (uintptr_t)gdt_extra == (uintptr_t)gdt + sizeof(gdt); }

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

void gdt_load(bool with_extra)
{
	struct table_register gdtr = {
		.limit = with_extra ? GDT_LIMIT_WITH_EXTRA : GDT_LIMIT,
		.base = (uintptr_t)gdt,
	};

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
