/*
 * Constants shared by C and assembly: GDT selectors, stack sizes,
 * interrupt vectors, multiboot header values. Preprocessor definitions only, so the
 * .S files can include it too.
 */
#ifndef LHV_LAYOUT_H
#define LHV_LAYOUT_H

#define PAGE_SIZE 4096
#define BOOT_STACK_SIZE 16384 /* boot_stack .. boot_stack_top; a guard page lies below */
#define IST_STACK_SIZE 4096   /* amd64 IST1 stack (tss.ist[0]); IST2 (`df-ist=2`) the same */

/* GDT selectors (index * 8 | RPL), LHV's layout. */
#ifdef __x86_64__
#define SEL_KERNEL_CS 0x08   /* 64-bit code, DPL 0 */
#define SEL_KERNEL_CS32 0x10 /* 32-bit code, DPL 0 (compatibility mode) */
#define SEL_KERNEL_DS 0x18   /* data, DPL 0 */
#define SEL_TSS 0x20         /* 16-byte 64-bit TSS descriptor (entries 4 and 5) */
#define SEL_USER_CS (0x30 | 3)
#define SEL_USER_DS (0x38 | 3)
#define GDT_ENTRIES 8
/* Extra slots right after the table, inside GDTR's limit only when the command line
 * injects a fault (lhv/fault.h): descriptors a fault case can name. */
#define SEL_NP_CODE 0x40 /* 64-bit code, DPL 0, NOT present */
#define SEL_NP_DATA 0x48 /* data, DPL 0, NOT present */
#define GDT_EXTRA_ENTRIES 2
#else
#define SEL_KERNEL_CS 0x08 /* 32-bit code, DPL 0 */
#define SEL_KERNEL_DS 0x10 /* data, DPL 0 */
#define SEL_TSS 0x18       /* 32-bit TSS descriptor */
#define SEL_USER_CS (0x20 | 3)
#define SEL_USER_DS (0x28 | 3)
#define GDT_ENTRIES 6
/* Extra slots right after the table, inside GDTR's limit only when the command line
 * injects a fault (lhv/fault.h). */
#define SEL_DF_TSS 0x30     /* the #DF task's TSS (`df-task`: IDT[8] is a task gate to it) */
#define SEL_NP_CODE 0x38    /* 32-bit code, DPL 0, NOT present */
#define SEL_NP_DATA 0x40    /* data, DPL 0, NOT present */
#define SEL_SMALL_CODE 0x48 /* 32-bit code, DPL 0, base 0, limit 0xfff (bytes) */
#define GDT_EXTRA_ENTRIES 4
#endif
#define GDT_LIMIT (GDT_ENTRIES * 8 - 1)
#define GDT_LIMIT_WITH_EXTRA ((GDT_ENTRIES + GDT_EXTRA_ENTRIES) * 8 - 1)

/* Interrupt vectors. */
#define IDT_ENTRIES 256
#define VEC_DOUBLE_FAULT 8
#define PIC_MASTER_BASE 0x20  /* IRQ0..7  -> 0x20..0x27 after pic_init */
#define PIC_SLAVE_BASE 0x28   /* IRQ8..15 -> 0x28..0x2f */
#define VEC_PIT (PIC_MASTER_BASE + 0)
#define VEC_KEYBOARD (PIC_MASTER_BASE + 1)
#define VEC_LAPIC_TIMER 0x22 /* IRQ2 is the cascade and never arrives, so 0x22 is free */
#define VEC_IRQ7 (PIC_MASTER_BASE + 7)
#define VEC_SOFT_TEST 0x30 /* `int $0x30` round-trip test */
#define VEC_LAPIC_SPURIOUS 0xff

/* Multiboot (version 1) header. */
#define MB_HEADER_MAGIC 0x1BADB002
#define MB_BOOT_MAGIC 0x2BADB002 /* in EAX at entry */
#define MB_FLAG_MEMINFO (1 << 1)
#define MB_FLAG_AOUT_KLUDGE (1 << 16) /* header carries load addresses: lets an ELF64 boot */

#endif
