/*
 * i386 entry. The multiboot loader enters _start in 32-bit protected mode, paging off,
 * EAX = multiboot magic, EBX = multiboot info. This is a plain ELF32 multiboot kernel.
 * _start zeroes .bss, loads the GDT, reloads the segment registers and calls
 * kernel_main(magic, info). paging_init turns paging on later, from C.
 */
#include "lhv/layout.h"
#include "macros.inc"

#define MB_FLAGS MB_FLAG_MEMINFO

	.section .multiboot, "a"
	.align 4
	.global multiboot_header
multiboot_header:
	.long MB_HEADER_MAGIC
	.long MB_FLAGS
	.long -(MB_HEADER_MAGIC + MB_FLAGS)
	.size multiboot_header, . - multiboot_header

	.text
	.code32
	.global _start
	.type _start, @function
_start:
	cli
	cld
	movl %eax, %esi

	ZERO_BSS

	lgdt boot_gdtr
	ljmp $SEL_KERNEL_CS, $1f
1:	LOAD_DATA_SEGMENTS SEL_KERNEL_DS
	movl $boot_stack_top, %esp
	subl $8, %esp /* 16-byte aligned at the call */
	pushl %ebx
	pushl %esi
	call kernel_main
2:	cli
	hlt
	jmp 2b
	.size _start, . - _start

	.section .rodata
	.align 4
boot_gdtr:
	.word GDT_LIMIT
	.long gdt

#include "stack.inc"

	.section .note.GNU-stack, "", @progbits
