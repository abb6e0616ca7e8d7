/* Identity paging with a not-present guard page below the kernel stack. */
#ifndef LHV_PAGING_H
#define LHV_PAGING_H

#include "lhv/types.h"

#define PTE_PRESENT (1u << 0)
#define PTE_WRITE (1u << 1)
#define PTE_USER (1u << 2)
#define PTE_PWT (1u << 3)
#define PTE_PCD (1u << 4)
#define PTE_LARGE (1u << 7) /* PS: a 2 MiB page in a page directory */

/*
 * amd64: the entry code already maps 0..4 GiB with 2 MiB pages (boot_pml4, boot_pdpt,
 * boot_pd). i386: builds the same boot_pd under a 4-entry PAE boot_pdpt and turns paging
 * on. Both then split the 2 MiB page holding the stack into 4 KiB pages (stack_pt) with
 * boot_stack_guard not present, and map the LAPIC page uncached.
 */
void paging_init(void);
/* `user` mode: every present page user-accessible (U/S at each level). */
void paging_allow_user(void);

#endif
