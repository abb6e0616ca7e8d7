/*
 * Local APIC: software enable through the spurious-vector register, LINT0 as ExtINT
 * (so the 8259 keeps reaching the CPU: "virtual wire" mode), and a periodic timer.
 * Register offsets: Intel SDM Vol. 3A, Table 11-1. The page is identity-mapped.
 */
#include "lhv/lapic.h"
#include "lhv/io.h"
#include "lhv/layout.h"

#define MSR_APIC_BASE 0x1b
#define APIC_BASE_ENABLE (1u << 11)
#define CPUID1_EDX_APIC (1u << 9)

#define LAPIC_EOI 0x0b0
#define LAPIC_SVR 0x0f0
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_TIMER_INITIAL 0x380
#define LAPIC_TIMER_DIVIDE 0x3e0

#define SVR_APIC_ENABLE (1u << 8)
#define LVT_TIMER_PERIODIC (1u << 17)
#define LVT_DELIVERY_EXTINT (7u << 8)
#define TIMER_DIVIDE_BY_16 0x3

volatile unsigned long lapic_ticks;
static uintptr_t lapic_base;

static void lapic_write(uint32_t reg, uint32_t v) { mmio_write32(lapic_base + reg, v); }

bool lapic_init(uint8_t vector, uint32_t initial_count)
{
	uint32_t a, b, c, d;

	cpuid(1, &a, &b, &c, &d);
	if (!(d & CPUID1_EDX_APIC))
		return false;
	uint64_t msr = rdmsr(MSR_APIC_BASE);
	if (!(msr & APIC_BASE_ENABLE))
		return false;
	lapic_base = (uintptr_t)(msr & 0xfffff000u);

	lapic_write(LAPIC_SVR, SVR_APIC_ENABLE | VEC_LAPIC_SPURIOUS);
	lapic_write(LAPIC_LVT_LINT0, LVT_DELIVERY_EXTINT);
	lapic_write(LAPIC_TIMER_DIVIDE, TIMER_DIVIDE_BY_16);
	lapic_write(LAPIC_LVT_TIMER, LVT_TIMER_PERIODIC | vector);
	lapic_write(LAPIC_TIMER_INITIAL, initial_count);
	return true;
}

void lapic_eoi(void) { lapic_write(LAPIC_EOI, 0); }

void lapic_timer_irq(void)
{
	lapic_ticks++;
	lapic_eoi();
}
