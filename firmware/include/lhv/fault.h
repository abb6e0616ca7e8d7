/*
 * Fault injection from the multiboot command line, so one image serves every fault case
 * (firmware/fault-cases.toml, docs/fault-matrix.md). Words:
 *
 *   fault=idt-limit:LIMIT          lidt with this limit
 *   fault=gate-type:VEC:TYPE       IDT[VEC] type field (4 bits)
 *   fault=gate-sel:VEC:SEL         IDT[VEC] code segment selector
 *   fault=gate-present:VEC:0|1     IDT[VEC] P bit
 *   fault=gate-dpl:VEC:DPL         IDT[VEC] DPL
 *   fault=gate-offset:VEC:ADDR     IDT[VEC] handler offset
 *   fault=ist:VEC:N                IDT[VEC] IST index (amd64)
 *   fault=tss-limit:LIMIT          the TSS descriptor's limit (before ltr)
 *   fault=ist-ptr:N:ADDR|guard     tss.ist[N-1] (amd64); guard = the top of the guard page
 *   fault=rsp0:ADDR|guard          tss.rsp0 (amd64) / tss.esp0 (i386; also `esp0`)
 *   fault=ss0:SEL                  tss.ss0 (i386)
 *   fault=iret-cs:SEL              the first PIT interrupt returns through a frame with this CS
 *   fault=iret-ss:SEL              ... this SS (amd64 always pops SS; i386 only to ring 3)
 *   fault=iret-rip:ADDR            ... this RIP/EIP
 *   fault=user-int:VEC             ring-3 code runs `int VEC` (with `user`)
 *   exc=MASK                       bit n: exception gate n present (default 0xffffffff)
 *   df-ist=N                       amd64: the #DF gate on IST N (N = 2: its own stack)
 *   df-task                        i386: the #DF gate is a task gate to its own TSS
 *   pic-base=M[:S]                 8259 master (and slave) vector base
 *   lapic-timer-vector=V           the LAPIC timer's LVT vector
 *   ioapic=V                       the PIT through I/O APIC pin 2 on vector V, 8259 masked
 *   rtc                            the RTC's periodic interrupt on (IRQ8, slave 8259)
 *   user                           drop to ring 3 (user code/data, IF=1) instead of hlt
 *   no-ltr                         never run ltr
 *   overflow                       recurse into the stack's guard page before sti
 *
 * Numbers are decimal or 0x-hex. Each injection prints one `inject: ...` line when it is
 * applied. Any of these words puts the firmware in fault mode: GDTR then also covers
 * the extra descriptors of lhv/layout.h.
 */
#ifndef LHV_FAULT_H
#define LHV_FAULT_H

#include "lhv/interrupts.h"
#include "lhv/types.h"

/* The `fault=` kinds. */
enum lhv_fault_kind {
	LHV_FAULT_NONE = 0,
	LHV_FAULT_IDT_LIMIT,
	LHV_FAULT_GATE_TYPE,
	LHV_FAULT_GATE_SEL,
	LHV_FAULT_GATE_PRESENT,
	LHV_FAULT_GATE_DPL,
	LHV_FAULT_GATE_OFFSET,
	LHV_FAULT_GATE_IST,
	LHV_FAULT_TSS_LIMIT,
	LHV_FAULT_IST_PTR,
	LHV_FAULT_RSP0,
	LHV_FAULT_SS0,
	LHV_FAULT_IRET_CS,
	LHV_FAULT_IRET_SS,
	LHV_FAULT_IRET_RIP,
	LHV_FAULT_USER_INT,
};

#define FAULT_MAX 8
#define FAULT_NO_VALUE (-1)

struct fault {
	enum lhv_fault_kind kind;
	uint32_t index;     /* vector, IST number; 0 when the kind has none */
	uint64_t value;     /* the injected value */
	bool value_is_guard; /* value is `guard`: the top of boot_stack_guard */
};

struct fault_plan {
	bool active; /* any fault word on the command line */
	unsigned int count;
	struct fault faults[FAULT_MAX];
	int64_t exception_gates;    /* exc=, or FAULT_NO_VALUE */
	int32_t df_ist;             /* df-ist=, or FAULT_NO_VALUE */
	bool df_task;
	int32_t pic_master_base;    /* pic-base=M[:S], or FAULT_NO_VALUE */
	int32_t pic_slave_base;
	int32_t lapic_timer_vector; /* or FAULT_NO_VALUE */
	int32_t ioapic_vector;      /* or FAULT_NO_VALUE */
	bool rtc;
	bool user;
	bool no_ltr;
	bool overflow;
};

extern struct fault_plan fault_plan;

/* Take one command-line word (len bytes at word); false if it is not a fault word. */
bool fault_parse_word(const char *word, unsigned int len);

/* TSS contents and descriptor (tss-limit, ist-ptr, rsp0, ss0, df-ist, df-task): before ltr. */
void fault_apply_tss(void);
/* 8259 bases and masks (pic-base, rtc, ioapic). */
void fault_adjust_pic(uint8_t *master_base, uint8_t *slave_base, uint16_t *mask);
/* The LAPIC timer vector to program (lapic-timer-vector, else `vector`). */
uint8_t fault_lapic_timer_vector(uint8_t vector);
/* Devices after the PIC, PIT and LAPIC are set up (rtc, ioapic). */
void fault_apply_devices(void);
/* The IDT: gates, IST indexes, exception gates, #DF gate, lidt limit. Right before sti. */
void fault_apply_idt(void);
/* iret-cs/ss/rip: rewrite the frame of the first PIT interrupt once. */
void fault_corrupt_return_frame(struct int_frame *f);
/* The vector `user` mode's code raises with `int` (0: none). */
uint8_t fault_user_int_vector(void);

#endif
