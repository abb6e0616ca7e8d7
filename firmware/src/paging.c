/*
 * Paging (Intel SDM Vol. 3A ch. 4): identity-maps 0..4 GiB with 2 MiB pages, except the
 * 2 MiB around the kernel, which gets 4 KiB pages (stack_pt) so that the page under
 * boot_stack can be a not-present guard page: a stack overflow faults at once instead
 * of overwriting the kernel. Both architectures use the same 64-bit entries: amd64 in
 * 4-level long-mode paging, i386 in PAE paging.
 */
#include "lhv/paging.h"
#include "lhv/io.h"
#include "lhv/layout.h"

#define LARGE_PAGE_SHIFT 21 /* 2 MiB */
#define PT_ENTRIES 512
#define PD_ENTRIES (4 * PT_ENTRIES) /* four page directories: 4 GiB */
#define LAPIC_DEFAULT_BASE 0xfee00000u

extern char boot_stack_guard[];

__attribute__((aligned(PAGE_SIZE))) uint64_t stack_pt[PT_ENTRIES];

#ifdef __x86_64__
extern uint64_t boot_pd[PD_ENTRIES]; /* filled by the entry code before long mode */
#else
#define CR0_PG (1u << 31)
#define CR0_WP (1u << 16)
#define CR4_PAE (1u << 5)
__attribute__((aligned(PAGE_SIZE))) uint64_t boot_pd[PD_ENTRIES];
__attribute__((aligned(32))) uint64_t boot_pdpt[4];

static void build_identity_map(void)
{
	for (unsigned int i = 0; i < PD_ENTRIES; i++)
		boot_pd[i] = ((uint64_t)i << LARGE_PAGE_SHIFT) | PTE_PRESENT | PTE_WRITE | PTE_LARGE;
	for (unsigned int i = 0; i < 4; i++) /* PAE PDPTEs: only P, PWT, PCD are defined */
		boot_pdpt[i] = (uintptr_t)&boot_pd[i * PT_ENTRIES] | PTE_PRESENT;
}
#endif

/* Replace the 2 MiB page holding the guard page by 4 KiB pages, the guard not present. */
static void map_guard_page(void)
{
	uintptr_t guard = (uintptr_t)boot_stack_guard;
	unsigned int pd_index = guard >> LARGE_PAGE_SHIFT;
	uintptr_t region = (uintptr_t)pd_index << LARGE_PAGE_SHIFT;

	for (unsigned int i = 0; i < PT_ENTRIES; i++)
		stack_pt[i] = (region + (uintptr_t)i * PAGE_SIZE) | PTE_PRESENT | PTE_WRITE;
	stack_pt[(guard - region) / PAGE_SIZE] = 0;
	boot_pd[pd_index] = (uintptr_t)stack_pt | PTE_PRESENT | PTE_WRITE;
}

void paging_init(void)
{
#ifndef __x86_64__
	build_identity_map();
#endif
	map_guard_page();
	boot_pd[LAPIC_DEFAULT_BASE >> LARGE_PAGE_SHIFT] |= PTE_PCD | PTE_PWT;
#ifdef __x86_64__
	write_cr3(read_cr3()); /* flush the TLB */
#else
	write_cr4(read_cr4() | CR4_PAE);
	write_cr3((uintptr_t)boot_pdpt);
	write_cr0(read_cr0() | CR0_PG | CR0_WP);
#endif
}

/* Set U/S at every level that has it (PAE PDPTEs have none), then flush the TLB. */
void paging_allow_user(void)
{
#ifdef __x86_64__
	extern uint64_t boot_pml4[PT_ENTRIES], boot_pdpt[PT_ENTRIES];

	boot_pml4[0] |= PTE_USER;
	for (unsigned int i = 0; i < 4; i++)
		boot_pdpt[i] |= PTE_USER;
#endif
	for (unsigned int i = 0; i < PD_ENTRIES; i++)
		if (boot_pd[i] & PTE_PRESENT)
			boot_pd[i] |= PTE_USER;
	for (unsigned int i = 0; i < PT_ENTRIES; i++)
		if (stack_pt[i] & PTE_PRESENT)
			stack_pt[i] |= PTE_USER;
	write_cr3(read_cr3());
}
