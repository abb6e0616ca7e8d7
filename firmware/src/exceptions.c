/*
 * The vector-8 handler and the panic path for everything else.
 *
 * The stub for vector 8 pushes no dummy error code, because a real #DF always pushes
 * one (0). If vector 8 instead arrives as a hardware interrupt (an 8259 left at the BIOS
 * base 0x08 delivers IRQ0 there), no error code is pushed and every word below is one
 * slot off: the "error code" is the interrupted RIP and the "RIP" is the kernel CS.
 * That shift is the evidence the handler reports.
 */
#include "lhv/exceptions.h"
#include "lhv/console.h"
#include "lhv/exit.h"
#include "lhv/io.h"
#include "lhv/layout.h"

extern char _text_start[], _text_end[];

static const char *const exception_names[32] = {
	"#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow",
	"#BR bound range", "#UD invalid opcode", "#NM no math coprocessor", "#DF double fault",
	"coprocessor segment overrun", "#TS invalid TSS", "#NP segment not present",
	"#SS stack-segment fault", "#GP general protection", "#PF page fault", "reserved",
	"#MF x87 floating-point error", "#AC alignment check", "#MC machine check",
	"#XM SIMD floating-point", "#VE virtualization", "#CP control protection",
	"reserved", "reserved", "reserved", "reserved", "reserved", "reserved",
	"#HV hypervisor injection", "#VC VMM communication", "#SX security", "reserved",
};

#ifdef __x86_64__
/* Words the CPU pushes for a #DF in long mode: always SS:RSP, then RFLAGS, CS, RIP, error. */
static const char *const df_frame_words[] = {"error code", "rip", "cs", "rflags", "rsp", "ss"};
#else
/* Without a privilege change a 32-bit #DF pushes EFLAGS, CS, EIP and the error code. */
static const char *const df_frame_words[] = {"error code", "eip", "cs", "eflags"};
#endif

#ifdef __x86_64__
#define WORD_FMT "0x%016lx"
#else
#define WORD_FMT "0x%08lx"
#endif

static bool is_kernel_text(uintptr_t addr)
{
	return addr >= (uintptr_t)_text_start && addr < (uintptr_t)_text_end;
}

void double_fault(struct int_frame *f)
{
	const uintptr_t *words = &f->error_code;

	kprintf("\n#DF handler: vector 8, frame read as a #DF frame (error code first):\n");
	for (unsigned int i = 0; i < ARRAY_SIZE(df_frame_words); i++)
		kprintf("  frame[%u] = " WORD_FMT "  %s\n", i, (unsigned long)words[i],
			df_frame_words[i]);
	kprintf("  cr2 = %p\n", (void *)read_cr2());

	if (is_kernel_text(words[0]) && words[1] == SEL_KERNEL_CS)
		kprintf("#DF verdict: NO error code: the error-code slot holds kernel RIP 0x%lx and "
			"the next word kernel CS 0x%lx, so vector 8 was not a real double fault "
			"(a hardware interrupt on vector 8?)\n",
			(unsigned long)words[0], (unsigned long)words[1]);
	else
		kprintf("#DF verdict: error code 0x%lx present: a real double fault (rip 0x%lx)\n",
			(unsigned long)words[0], (unsigned long)words[1]);
	lhv_exit(LHV_EXIT_DOUBLE_FAULT);
}

void unexpected_interrupt(struct int_frame *f)
{
	if (f->vector < 32)
		kprintf("\nPANIC: exception 0x%lx (%s) error=0x%lx rip=0x%lx cs=0x%lx flags=0x%lx "
			"cr2=%p\n",
			(unsigned long)f->vector, exception_names[f->vector],
			(unsigned long)f->error_code, (unsigned long)f->ip, (unsigned long)f->cs,
			(unsigned long)f->flags, (void *)read_cr2());
	else
		kprintf("\nPANIC: unexpected interrupt vector 0x%lx rip=0x%lx\n",
			(unsigned long)f->vector, (unsigned long)f->ip);
	lhv_exit(LHV_EXIT_PANIC);
}
