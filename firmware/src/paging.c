/*
 * Paging (Intel SDM Vol. 3A ch. 4): identity maps everything below 4 GiB, with 4 KiB
 * pages around the kernel so the page under boot_stack can be a not-present guard page.
 * A stack overflow then faults at once instead of overwriting the kernel.
 */
#include "lhv/paging.h"
#include "lhv/io.h"
#include "lhv/layout.h"

#define LAPIC_DEFAULT_BASE 0xfee00000u

extern char boot_stack_guard[];

#ifdef __x86_64__
#define LARGE_PAGE_SHIFT 21 /* 2 MiB */
#define ENTRIES 512
extern uint64_t boot_pd[4 * ENTRIES]; /* entry code: 2048 2 MiB pages = 4 GiB */
__attribute__((aligned(PAGE_SIZE))) uint64_t stack_pt[ENTRIES];

void paging_init(void)
{
	uintptr_t guard = (uintptr_t)boot_stack_guard;
	unsigned int pd_index = guard >> LARGE_PAGE_SHIFT;
	uintptr_t region = (uintptr_t)pd_index << LARGE_PAGE_SHIFT;

	for (unsigned int i = 0; i < ENTRIES; i++)
		stack_pt[i] = (region + (uintptr_t)i * PAGE_SIZE) | PTE_PRESENT | PTE_WRITE;
	stack_pt[(guard - region) / PAGE_SIZE] = 0;
	boot_pd[pd_index] = (uintptr_t)stack_pt | PTE_PRESENT | PTE_WRITE;
	boot_pd[LAPIC_DEFAULT_BASE >> LARGE_PAGE_SHIFT] |= PTE_PCD | PTE_PWT;
	write_cr3(read_cr3()); /* flush the TLB */
}
#else
#define LARGE_PAGE_SHIFT 22 /* 4 MiB */
#define ENTRIES 1024
#define CR0_PG (1u << 31)
#define CR0_WP (1u << 16)
#define CR4_PSE (1u << 4)
__attribute__((aligned(PAGE_SIZE))) uint32_t page_dir[ENTRIES];
__attribute__((aligned(PAGE_SIZE))) uint32_t low_pt[ENTRIES];

_Static_assert(KERNEL_LOAD_ADDR < (1u << LARGE_PAGE_SHIFT), "kernel inside low_pt");

void paging_init(void)
{
	uintptr_t guard = (uintptr_t)boot_stack_guard;

	for (unsigned int i = 0; i < ENTRIES; i++)
		low_pt[i] = (i * PAGE_SIZE) | PTE_PRESENT | PTE_WRITE;
	low_pt[guard / PAGE_SIZE] = 0;
	page_dir[0] = (uintptr_t)low_pt | PTE_PRESENT | PTE_WRITE;
	for (unsigned int i = 1; i < ENTRIES; i++)
		page_dir[i] = (i << LARGE_PAGE_SHIFT) | PTE_PRESENT | PTE_WRITE | PTE_LARGE;
	page_dir[LAPIC_DEFAULT_BASE >> LARGE_PAGE_SHIFT] |= PTE_PCD | PTE_PWT;

	write_cr4(read_cr4() | CR4_PSE);
	write_cr3((uintptr_t)page_dir);
	write_cr0(read_cr0() | CR0_PG | CR0_WP);
}
#endif
