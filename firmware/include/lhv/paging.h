/* Identity paging with a not-present guard page below the kernel stack. */
#ifndef LHV_PAGING_H
#define LHV_PAGING_H

#include "lhv/types.h"

#define PTE_PRESENT (1u << 0)
#define PTE_WRITE (1u << 1)
#define PTE_PWT (1u << 3)
#define PTE_PCD (1u << 4)
#define PTE_LARGE (1u << 7) /* PS: a 2 MiB (PAE/long mode) or 4 MiB (32-bit) page */

/*
 * amd64: the entry code already maps 0..4 GiB with 2 MiB pages (boot_pml4/boot_pdpt/
 * boot_pd); this splits the 2 MiB page holding the stack into 4 KiB pages (stack_pt).
 * i386: builds page_dir (4 MiB pages) with low_pt (4 KiB pages for 0..4 MiB) and turns
 * paging on. Both leave boot_stack_guard not present and the LAPIC page uncached.
 */
void paging_init(void);

#endif
