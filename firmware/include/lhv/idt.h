/* The interrupt descriptor table: 256 interrupt gates (Intel SDM Vol. 3A §6.11, §6.14.1). */
#ifndef LHV_IDT_H
#define LHV_IDT_H

#include "lhv/layout.h"
#include "lhv/types.h"

#define GATE_INTERRUPT_DPL0 0x8e /* present, DPL 0, 32/64-bit interrupt gate */
#define GATE_TASK 0x85           /* present, DPL 0, task gate (protected mode only) */
#define GATE_PRESENT 0x80
#define GATE_DPL_SHIFT 5
#define GATE_TYPE_MASK 0x0f

#ifdef __x86_64__
struct __attribute__((packed)) idt_gate {
	uint16_t offset_low;
	uint16_t selector;
	uint8_t ist; /* bits 0-2: IST index, 0 = stay on the current stack */
	uint8_t type_attr;
	uint16_t offset_mid;
	uint32_t offset_high;
	uint32_t reserved;
};
#else
struct __attribute__((packed)) idt_gate {
	uint16_t offset_low;
	uint16_t selector;
	uint8_t zero;
	uint8_t type_attr;
	uint16_t offset_high;
};
#endif

extern struct idt_gate idt[IDT_ENTRIES];
/* The assembly entry stubs isr_0 .. isr_255, one per vector. */
extern const uintptr_t isr_stub_table[IDT_ENTRIES];

/* Fill all 256 gates as the variant's configuration says, then lidt. */
void idt_init(void);
/* lidt with the table `idt` and this limit. */
void idt_load(uint16_t limit);

#endif
