/*
 * IDT: every gate is an interrupt gate (type 0x8E: IF cleared on entry) with the kernel
 * code selector, pointing at its vector's assembly stub. The variant's configuration
 * may leave gates not present or give them an IST index.
 */
#include "lhv/idt.h"
#include "lhv/config.h"
#include "lhv/gdt.h"

__attribute__((aligned(16))) struct idt_gate idt[IDT_ENTRIES];

static void idt_set_gate(unsigned int vector, uintptr_t handler, uint8_t ist, bool present)
{
	struct idt_gate *g = &idt[vector];

	g->offset_low = handler & 0xffff;
	g->selector = SEL_KERNEL_CS;
	g->type_attr = present ? GATE_INTERRUPT_DPL0 : (GATE_INTERRUPT_DPL0 & 0x7f);
#ifdef __x86_64__
	g->ist = ist & 7;
	g->offset_mid = (handler >> 16) & 0xffff;
	g->offset_high = (uint32_t)((uint64_t)handler >> 32);
	g->reserved = 0;
#else
	(void)ist; /* no IST in 32-bit mode */
	g->zero = 0;
	g->offset_high = (handler >> 16) & 0xffff;
#endif
}

void idt_init(void)
{
	const struct lhv_config *cfg = &lhv_config;

	for (unsigned int v = 0; v < IDT_ENTRIES; v++) {
		bool present = true;
		uint8_t ist = 0;

		if (v < 32) {
			present = (cfg->exception_gates >> v) & 1;
			ist = v == VEC_DOUBLE_FAULT ? cfg->df_ist : cfg->exception_ist;
		} else if (v == VEC_PIT) {
			present = cfg->timer_gate;
			ist = cfg->timer_ist;
		}
		idt_set_gate(v, isr_stub_table[v], ist, present);
	}

	idt_load(sizeof(idt) - 1);
}

void idt_load(uint16_t limit)
{
	struct table_register idtr = {.limit = limit, .base = (uintptr_t)idt};

	__asm__ volatile("lidt %0" : : "m"(idtr));
}
