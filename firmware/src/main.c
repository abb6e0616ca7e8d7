/*
 * kernel_main: bring up console, tables, paging, PIC, PIT and LAPIC in LHV's order,
 * test a software interrupt, enable interrupts, count PIT ticks and exit QEMU.
 * The variant's configuration (lhv_config) decides what is left out or broken.
 */
#include "lhv/cmdline.h"
#include "lhv/config.h"
#include "lhv/console.h"
#include "lhv/exit.h"
#include "lhv/fault.h"
#include "lhv/gdt.h"
#include "lhv/idt.h"
#include "lhv/interrupts.h"
#include "lhv/io.h"
#include "lhv/lapic.h"
#include "lhv/layout.h"
#include "lhv/multiboot.h"
#include "lhv/paging.h"
#include "lhv/pic.h"
#include "lhv/pit.h"
#include "lhv/tss.h"
#include "lhv/user.h"

/* PIC masks after remapping: IRQ0 (PIT), IRQ1 (keyboard), IRQ2 (cascade) open. */
#define PIC_MASK_PIT_KBD_CASCADE 0xfff8

void kernel_main(uint32_t magic, uint32_t mbi_addr);

/* Send `in` through `int $0x30`; the handler answers in + 1 in the accumulator. */
static uintptr_t soft_interrupt_round_trip(uintptr_t in)
{
	uintptr_t out;

	__asm__ volatile("int %[vec]" : "=a"(out) : "a"(in), [vec] "i"(VEC_SOFT_TEST) : "memory");
	return out;
}

/*
 * The stack-overflow variant: each call keeps a 64-byte frame alive (no tail call) until
 * the guard page faults; the base case is never reached.
 */
__attribute__((noinline)) static unsigned long recurse(unsigned long depth)
{
	volatile char pad[64];

	if (depth == ~0UL)
		return 0;
	pad[0] = (char)depth;
	return recurse(depth + 1) + pad[0];
}

/*
 * KVM's PVM flavour (the kernel's pagetable-based VM) cannot run `int n` in the guest: it
 * stops the VM with "KVM internal error ... emulation failure". QEMU reports KVM the
 * same way for PVM and hardware KVM, so the round trip is off under any KVM by default.
 */
static bool hypervisor_is_kvm(void)
{
	uint32_t a, b, c, d;

	cpuid(1, &a, &b, &c, &d);
	if (!(c & (1u << 31))) /* CPUID.1:ECX.hypervisor */
		return false;
	cpuid(0x40000000, &a, &b, &c, &d);
	return b == 0x4b4d564b && c == 0x564b4d56 && d == 0x4d; /* "KVMKVMKVM\0\0\0" */
}

static const char *settings_source(const struct multiboot_info *mbi)
{
	if (mbi && (mbi->flags & MB_INFO_CMDLINE) && mbi->cmdline)
		return (const char *)(uintptr_t)mbi->cmdline;
	return NULL;
}

static void count_ticks(const struct run_settings *s)
{
	unsigned long printed = 0;

	while (pit_ticks < s->ticks) {
		hlt();
		unsigned long now = pit_ticks;
		for (unsigned long t = printed + 1; t <= now && t <= s->ticks; t++)
			if (t % s->tick_every == 0)
				kprintf("tick %lu\n", t);
		printed = now;
	}
	cli();
}

void kernel_main(uint32_t magic, uint32_t mbi_addr)
{
	const struct lhv_config *cfg = &lhv_config;
	const struct multiboot_info *mbi =
		magic == MB_BOOT_MAGIC ? (const struct multiboot_info *)(uintptr_t)mbi_addr : NULL;
	struct run_settings s = {
		.ticks = cfg->ticks,
		.tick_every = cfg->tick_every,
		.pit_hz = cfg->pit_hz,
		.soft_int = !hypervisor_is_kvm(),
	};
	const char *cmdline = settings_source(mbi);

	console_init();
	kprintf("LHV firmware " LHV_ARCH " variant=%s\n", cfg->variant);
	cmdline_parse(cmdline, &s);
	kprintf("settings: ticks=%u every=%u hz=%u softint=%u cmdline=\"%s\"\n", s.ticks,
		s.tick_every, s.pit_hz, s.soft_int, cmdline ? cmdline : "");

	bool load_tr = cfg->load_tr && !fault_plan.no_ltr;

	tss_init();
	fault_apply_tss();
	gdt_load(fault_plan.active);
	if (load_tr)
		tss_load();
	idt_init();
	paging_init();
	kprintf("tables: gdt=%p idt=%p tss=%p ltr=%s\n", (void *)gdt, (void *)idt, (void *)&tss,
		load_tr ? "yes" : "no");

	uint8_t master = PIC_MASTER_BASE, slave = PIC_SLAVE_BASE;
	uint16_t mask = PIC_MASK_PIT_KBD_CASCADE;
	if (cfg->remap_pic) {
		fault_adjust_pic(&master, &slave, &mask);
		pic_init(master, slave, mask);
		kprintf("pic: remapped to 0x%02x/0x%02x\n", master, slave);
	} else {
		kprintf("pic: left at the BIOS mapping\n");
	}
	pit_init(s.pit_hz);
	uint8_t lapic_vector = fault_lapic_timer_vector(VEC_LAPIC_TIMER);
	if (lapic_init(lapic_vector, cfg->lapic_count))
		kprintf("lapic: timer periodic on vector 0x%02x\n", lapic_vector);
	else
		kprintf("lapic: absent\n");
	fault_apply_devices();

	if (s.soft_int) {
		uintptr_t answer = soft_interrupt_round_trip(0x1234);
		kprintf("int 0x30: %s (sent 0x1234, got 0x%lx)\n",
			answer == 0x1235 ? "ok" : "FAILED", (unsigned long)answer);
	} else {
		kprintf("int 0x30: skipped (KVM; softint=1 forces it)\n");
	}

	fault_apply_idt();
	if (cfg->stack_overflow || fault_plan.overflow) {
		kprintf("stack-overflow: recursing from sp=%p toward the guard page\n",
			__builtin_frame_address(0));
		recurse(0);
	}

	if (fault_plan.user)
		user_enter(&s, fault_user_int_vector());
	kprintf("sti\n");
	sti();
	count_ticks(&s);
	kprintf("done: %lu PIT ticks, %lu LAPIC ticks\n", pit_ticks, lapic_ticks);
	lhv_exit(LHV_EXIT_OK);
}
