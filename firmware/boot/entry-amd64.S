/*
 * amd64 entry. The multiboot loader enters _start in 32-bit protected mode, paging off,
 * EAX = multiboot magic, EBX = multiboot info. The header uses the "a.out kludge" (flag
 * bit 16): it carries the load addresses itself, so QEMU's -kernel boots this ELF64
 * file (QEMU refuses ELF64 otherwise) and gdb reads its symbols from the same file.
 *
 * _start zeroes .bss, identity-maps 0..4 GiB with 2 MiB pages, enables PAE, sets
 * EFER.LME, turns paging on (Intel SDM Vol. 3A §10.8.5), loads the GDT and far-jumps to
 * 64-bit code, which calls kernel_main(magic, info).
 */
#include "lhv/layout.h"
#include "macros.inc"

#define CR0_PG (1 << 31)
#define CR4_PAE (1 << 5)
#define MSR_EFER 0xc0000080
#define EFER_LME (1 << 8)
#define PTE_PRESENT_WRITE 0x3
#define PTE_LARGE 0x80
#define MB_FLAGS (MB_FLAG_MEMINFO | MB_FLAG_AOUT_KLUDGE)

	.section .multiboot, "a"
	.align 4
	.global multiboot_header
multiboot_header:
	.long MB_HEADER_MAGIC
	.long MB_FLAGS
	.long -(MB_HEADER_MAGIC + MB_FLAGS)
	.long multiboot_header /* header_addr */
	.long _kernel_start    /* load_addr: the start of the one PT_LOAD segment */
	.long _load_end        /* load_end_addr: end of the file part (.text..data) */
	.long _bss_end         /* bss_end_addr: the loader zeroes up to here */
	.long _start           /* entry_addr */
	.size multiboot_header, . - multiboot_header

	.text
	.code32
	.global _start
	.type _start, @function
_start:
	cli
	cld
	movl %eax, %esi /* keep the magic; EBX (info) is not touched below */

	/* Zero .bss: page tables and stacks live there. */
	ZERO_BSS

	movl $boot_stack_top, %esp

	/* PML4[0] -> PDPT; PDPT[0..3] -> the four page directories of boot_pd. */
	movl $boot_pdpt, %eax
	orl $PTE_PRESENT_WRITE, %eax
	movl %eax, boot_pml4
	movl $boot_pd, %eax
	orl $PTE_PRESENT_WRITE, %eax
	xorl %ecx, %ecx
1:	movl %eax, boot_pdpt(, %ecx, 8)
	addl $PAGE_SIZE, %eax
	incl %ecx
	cmpl $4, %ecx
	jne 1b

	/* boot_pd[i] = i * 2 MiB, present, writable, large: 2048 entries cover 4 GiB. */
	xorl %ecx, %ecx
2:	movl %ecx, %eax
	shll $21, %eax
	orl $(PTE_PRESENT_WRITE | PTE_LARGE), %eax
	movl %eax, boot_pd(, %ecx, 8)
	incl %ecx
	cmpl $2048, %ecx
	jne 2b

	movl %cr4, %eax
	orl $CR4_PAE, %eax
	movl %eax, %cr4
	movl $boot_pml4, %eax
	movl %eax, %cr3
	movl $MSR_EFER, %ecx
	rdmsr
	orl $EFER_LME, %eax
	wrmsr
	movl %cr0, %eax
	orl $CR0_PG, %eax
	movl %eax, %cr0 /* long mode active, still in a 32-bit code segment */

	lgdt boot_gdtr
	ljmp $SEL_KERNEL_CS, $long_mode_entry

	.code64
long_mode_entry:
	LOAD_DATA_SEGMENTS SEL_KERNEL_DS
	movq $boot_stack_top, %rsp
	movl %esi, %edi /* kernel_main(magic, info) */
	movl %ebx, %esi
	call kernel_main
3:	cli
	hlt
	jmp 3b
	.size _start, . - _start

	.section .rodata
	.align 8
boot_gdtr:
	.word GDT_LIMIT
	.quad gdt

	.section .bss
	.align PAGE_SIZE
	.global boot_pml4, boot_pdpt, boot_pd
boot_pml4:
	.skip PAGE_SIZE
	.size boot_pml4, PAGE_SIZE
	.type boot_pml4, @object
boot_pdpt:
	.skip PAGE_SIZE
	.size boot_pdpt, PAGE_SIZE
	.type boot_pdpt, @object
boot_pd:
	.skip 4 * PAGE_SIZE
	.size boot_pd, 4 * PAGE_SIZE
	.type boot_pd, @object

#include "stack.inc"

	.section .note.GNU-stack, "", @progbits
