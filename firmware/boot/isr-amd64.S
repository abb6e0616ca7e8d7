/*
 * amd64 interrupt entry. After a stub, the stack holds (from RSP up): vector, error code,
 * RIP, CS, RFLAGS, RSP, SS. isr_common saves the general registers, giving the
 * struct int_frame of lhv/interrupts.h, calls isr_dispatch(frame) and returns with
 * iretq. 15 registers + 2 words + 5 CPU words = 176 bytes, and the CPU aligned RSP to
 * 16 before pushing, so the call is made with a 16-byte aligned stack.
 */
#include "lhv/layout.h"

#define PUSH_WORD pushq
#define STUB_POINTER .quad

	.code64
#include "isr-common.inc"

	.text
	.type isr_common, @function
isr_common:
	pushq %rax
	pushq %rbx
	pushq %rcx
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %rbp
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	movq %rsp, %rdi
	cld
	call isr_dispatch
	.global isr_return
isr_return:
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rbp
	popq %rdi
	popq %rsi
	popq %rdx
	popq %rcx
	popq %rbx
	popq %rax
	addq $16, %rsp /* vector and error code */
	iretq
	.size isr_common, . - isr_common

	.section .note.GNU-stack, "", @progbits
