/*
 * i386 interrupt entry. After a stub, the stack holds (from ESP up): vector, error code,
 * EIP, CS, EFLAGS (and ESP, SS on a privilege change). isr_common saves the general
 * registers with pushal, giving struct int_frame of lhv/interrupts.h, calls
 * isr_dispatch(frame) and returns with iret.
 */
#include "lhv/layout.h"

#define PUSH_WORD pushl
#define STUB_POINTER .long

	.code32
#include "isr-common.inc"

	.text
	.type isr_common, @function
isr_common:
	pushal
	movl %esp, %eax
	cld
	pushl %eax
	call isr_dispatch
	addl $4, %esp
	.global isr_return
isr_return:
	popal
	addl $8, %esp /* vector and error code */
	iret
	.size isr_common, . - isr_common

	.section .note.GNU-stack, "", @progbits
