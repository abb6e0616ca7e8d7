/*
 * The frame every interrupt stub hands to C. Each stub pushes an error code (a dummy 0
 * for vectors where the CPU pushes none) and its vector, then the common code pushes the
 * general registers, so all vectors share one layout. The stub for vector 8 pushes no
 * dummy: a real #DF always has an error code (Intel SDM Vol. 3A §6.15).
 */
#ifndef LHV_INTERRUPTS_H
#define LHV_INTERRUPTS_H

#include "lhv/types.h"

struct int_frame {
#ifdef __x86_64__
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
#else
	uint32_t edi, esi, ebp, esp_at_pushal, ebx, edx, ecx, eax; /* pushal order */
#endif
	uintptr_t vector;
	uintptr_t error_code;
	/* pushed by the CPU */
	uintptr_t ip;
	uintptr_t cs;
	uintptr_t flags;
	uintptr_t sp; /* amd64: always; i386: only on a privilege change */
	uintptr_t ss;
};

/* Called by the assembly stubs with the frame; returning resumes via iret. */
void isr_dispatch(struct int_frame *frame);

extern volatile unsigned long soft_test_calls;
extern volatile unsigned long spurious_irq7;

#endif
