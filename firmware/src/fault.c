/*
 * Fault injection (syntax in lhv/fault.h). Parsing only records the plan; each part is
 * applied where it has to be: the TSS before ltr, the 8259/LAPIC/I/O APIC when they are
 * programmed, the IDT right before sti, a return frame in the first PIT interrupt. Each
 * injection prints one `inject: ...` line.
 */
#include "lhv/fault.h"
#include "lhv/abi.h"
#include "lhv/console.h"
#include "lhv/exit.h"
#include "lhv/gdt.h"
#include "lhv/idt.h"
#include "lhv/ioapic.h"
#include "lhv/layout.h"
#include "lhv/rtc.h"
#include "lhv/tss.h"

extern char boot_stack_guard[];

struct fault_plan fault_plan = {
	.exception_gates = FAULT_NO_VALUE,
	.df_ist = FAULT_NO_VALUE,
	.pic_master_base = FAULT_NO_VALUE,
	.pic_slave_base = FAULT_NO_VALUE,
	.lapic_timer_vector = FAULT_NO_VALUE,
	.ioapic_vector = FAULT_NO_VALUE,
};

/* One object of each enum type, so the DWARF keeps the types (see lhv/abi.h). */
struct lhv_dwarf_enums {
	enum lhv_selector selector;
	enum lhv_vector vector;
	enum lhv_port port;
	enum lhv_fault_kind fault_kind;
	enum lhv_exit_code exit_code;
};
__attribute__((used)) const struct lhv_dwarf_enums lhv_dwarf_enums;

struct kind_name {
	const char *name;
	enum lhv_fault_kind kind;
	unsigned int args; /* 1: VALUE, 2: INDEX:VALUE */
};

static const struct kind_name kinds[] = {
	{"idt-limit", LHV_FAULT_IDT_LIMIT, 1},    {"gate-type", LHV_FAULT_GATE_TYPE, 2},
	{"gate-sel", LHV_FAULT_GATE_SEL, 2},      {"gate-present", LHV_FAULT_GATE_PRESENT, 2},
	{"gate-dpl", LHV_FAULT_GATE_DPL, 2},      {"gate-offset", LHV_FAULT_GATE_OFFSET, 2},
	{"ist", LHV_FAULT_GATE_IST, 2},           {"tss-limit", LHV_FAULT_TSS_LIMIT, 1},
	{"ist-ptr", LHV_FAULT_IST_PTR, 2},        {"rsp0", LHV_FAULT_RSP0, 1},
	{"esp0", LHV_FAULT_RSP0, 1},              {"ss0", LHV_FAULT_SS0, 1},
	{"iret-cs", LHV_FAULT_IRET_CS, 1},        {"iret-ss", LHV_FAULT_IRET_SS, 1},
	{"iret-rip", LHV_FAULT_IRET_RIP, 1},      {"user-int", LHV_FAULT_USER_INT, 1},
};

/* ---- parsing ---- */

/* Does [*p, end) start with s? Then move *p past it. */
static bool take(const char **p, const char *end, const char *s)
{
	const char *q = *p;

	for (; *s; s++, q++)
		if (q >= end || *q != *s)
			return false;
	*p = q;
	return true;
}

/* A decimal or 0x-hex number at *p (up to end or ':'); moves *p past it. */
static bool take_number(const char **p, const char *end, uint64_t *out)
{
	const char *q = *p;
	uint64_t v = 0;
	bool hex = take(&q, end, "0x"), any = false;

	for (; q < end && *q != ':'; q++, any = true) {
		char c = *q;
		unsigned int d;
		if (c >= '0' && c <= '9')
			d = (unsigned int)(c - '0');
		else if (hex && c >= 'a' && c <= 'f')
			d = (unsigned int)(c - 'a' + 10);
		else if (hex && c >= 'A' && c <= 'F')
			d = (unsigned int)(c - 'A' + 10);
		else
			return false;
		v = hex ? (v << 4) | d : v * 10 + d;
	}
	*p = q;
	*out = v;
	return any;
}

static bool take_value(const char **p, const char *end, struct fault *f)
{
	if (take(p, end, "guard")) {
		f->value_is_guard = true;
		return *p == end;
	}
	return take_number(p, end, &f->value) && *p == end;
}

static bool parse_fault(const char *p, const char *end)
{
	for (unsigned int i = 0; i < ARRAY_SIZE(kinds); i++) {
		const char *q = p;
		struct fault f = {.kind = kinds[i].kind};
		uint64_t index;

		if (!take(&q, end, kinds[i].name) || !take(&q, end, ":"))
			continue;
		if (kinds[i].args == 2) {
			if (!take_number(&q, end, &index) || !take(&q, end, ":"))
				return false;
			f.index = (uint32_t)index;
		}
		if (!take_value(&q, end, &f) || fault_plan.count == FAULT_MAX)
			return false;
		fault_plan.faults[fault_plan.count++] = f;
		return true;
	}
	return false;
}

/* key=NUMBER (at most max) into *out. */
static bool parse_int(const char *p, const char *end, const char *key, uint64_t max,
		      int64_t *out)
{
	uint64_t v;

	if (!take(&p, end, key) || !take_number(&p, end, &v) || p != end || v > max)
		return false;
	*out = (int64_t)v;
	return true;
}

/* pic-base=M or pic-base=M:S. */
static bool parse_pic_base(const char *p, const char *end)
{
	uint64_t master, slave = 0;
	bool has_slave = false;

	if (!take(&p, end, "pic-base=") || !take_number(&p, end, &master) || master > 0xf8)
		return false;
	if (p != end) {
		if (!take(&p, end, ":") || !take_number(&p, end, &slave) || p != end || slave > 0xf8)
			return false;
		has_slave = true;
	}
	fault_plan.pic_master_base = (int32_t)master;
	if (has_slave)
		fault_plan.pic_slave_base = (int32_t)slave;
	return true;
}

static bool parse_word(const char *p, const char *end)
{
	int64_t v;

	if (take(&p, end, "fault="))
		return parse_fault(p, end);
	if (parse_int(p, end, "exc=", 0xffffffff, &v)) {
		fault_plan.exception_gates = v;
		return true;
	}
	if (parse_int(p, end, "df-ist=", 7, &v)) {
		fault_plan.df_ist = (int32_t)v;
		return true;
	}
	if (parse_int(p, end, "lapic-timer-vector=", 0xff, &v)) {
		fault_plan.lapic_timer_vector = (int32_t)v;
		return true;
	}
	if (parse_int(p, end, "ioapic=", 0xff, &v)) {
		fault_plan.ioapic_vector = (int32_t)v;
		return true;
	}
	if (parse_pic_base(p, end))
		return true;
	struct {
		const char *word;
		bool *flag;
	} flags[] = {
		{"df-task", &fault_plan.df_task}, {"rtc", &fault_plan.rtc},
		{"user", &fault_plan.user},       {"no-ltr", &fault_plan.no_ltr},
		{"overflow", &fault_plan.overflow},
	};
	for (unsigned int i = 0; i < ARRAY_SIZE(flags); i++) {
		const char *q = p;
		if (take(&q, end, flags[i].word) && q == end) {
			*flags[i].flag = true;
			return true;
		}
	}
	return false;
}

static bool is_fault_word(const char *p, const char *end)
{
	static const char *const prefixes[] = {
		"fault=", "exc=",  "df-ist=", "df-task", "pic-base=", "lapic-timer-vector=",
		"ioapic=", "rtc", "user",    "no-ltr",  "overflow",
	};
	for (unsigned int i = 0; i < ARRAY_SIZE(prefixes); i++) {
		const char *q = p;
		if (take(&q, end, prefixes[i]))
			return true;
	}
	return false;
}

bool fault_parse_word(const char *word, unsigned int len)
{
	const char *end = word + len;

	if (!is_fault_word(word, end))
		return false;
	fault_plan.active = true;
	if (!parse_word(word, end)) {
		kprintf("inject: cannot parse \"");
		for (const char *c = word; c < end; c++)
			console_putc(*c);
		kprintf("\" (ignored)\n");
	}
	return true;
}

/* ---- applying ---- */

static uint64_t value_of(const struct fault *f)
{
	return f->value_is_guard ? (uintptr_t)boot_stack_guard + PAGE_SIZE : f->value;
}

static const char *value_note(const struct fault *f)
{
	return f->value_is_guard ? " (top of boot_stack_guard: pushes land in the unmapped page)"
				 : "";
}

#ifdef __x86_64__
#define STACK_FIELD "rsp0"
#else
#define STACK_FIELD "esp0"
#endif

static void tss_limit(uint32_t limit)
{
	uint64_t *d = &gdt[SEL_TSS / 8];

	*d = (*d & ~0x000f00000000ffffULL) | (limit & 0xffff) | ((uint64_t)(limit >> 16 & 0xf) << 48);
}

void fault_apply_tss(void)
{
	for (unsigned int i = 0; i < fault_plan.count; i++) {
		const struct fault *f = &fault_plan.faults[i];
		uint64_t v = value_of(f);

		switch (f->kind) {
		case LHV_FAULT_TSS_LIMIT:
			tss_limit((uint32_t)v);
			kprintf("inject: tss-limit: the TSS descriptor (gdt[0x%02x]) limit 0x%lx (was 0x%x)\n",
				SEL_TSS, (unsigned long)v, TSS_LIMIT);
			break;
#ifdef __x86_64__
		case LHV_FAULT_IST_PTR:
			if (f->index < 1 || f->index > 7)
				break;
			tss.ist[f->index - 1] = v;
			kprintf("inject: ist-ptr: tss.ist%u = 0x%llx%s\n", (unsigned int)f->index,
				(unsigned long long)v, value_note(f));
			break;
		case LHV_FAULT_RSP0:
			tss.rsp0 = v;
			break;
#else
		case LHV_FAULT_RSP0:
			tss.esp0 = (uint32_t)v;
			break;
		case LHV_FAULT_SS0:
			kprintf("inject: ss0: tss.ss0 = 0x%lx (was 0x%x)\n", (unsigned long)v,
				SEL_KERNEL_DS);
			tss.ss0 = (uint16_t)v;
			break;
#endif
		default:
			break;
		}
		if (f->kind == LHV_FAULT_RSP0)
			kprintf("inject: " STACK_FIELD ": tss." STACK_FIELD " = 0x%llx%s\n",
				(unsigned long long)v, value_note(f));
	}
#ifdef __x86_64__
	if (fault_plan.df_ist == 2) {
		tss.ist[1] = tss_ist2_stack_top();
		kprintf("inject: df-ist: tss.ist2 = %p (a stack of its own for #DF)\n",
			(void *)tss.ist[1]);
	}
#endif
	if (fault_plan.active && !gdt_extra_follows())
		kprintf("inject: WARNING gdt_extra does not follow gdt; extra selectors unusable\n");
	if (fault_plan.no_ltr)
		kprintf("inject: no-ltr: ltr never runs (TR keeps its reset state)\n");
}

void fault_adjust_pic(uint8_t *master_base, uint8_t *slave_base, uint16_t *mask)
{
	if (fault_plan.pic_master_base != FAULT_NO_VALUE) {
		kprintf("inject: pic-base: 8259 master base 0x%02x (was 0x%02x)\n",
			(unsigned int)fault_plan.pic_master_base, *master_base);
		*master_base = (uint8_t)fault_plan.pic_master_base;
	}
	if (fault_plan.pic_slave_base != FAULT_NO_VALUE) {
		kprintf("inject: pic-base: 8259 slave base 0x%02x (was 0x%02x)\n",
			(unsigned int)fault_plan.pic_slave_base, *slave_base);
		*slave_base = (uint8_t)fault_plan.pic_slave_base;
	}
	if (fault_plan.rtc)
		*mask &= (uint16_t)~(1u << 8); /* IRQ8 (RTC); IRQ2 (cascade) is open already */
	if (fault_plan.ioapic_vector != FAULT_NO_VALUE)
		*mask = 0xffff; /* every 8259 line masked: the PIT comes through the I/O APIC only */
}

uint8_t fault_lapic_timer_vector(uint8_t vector)
{
	if (fault_plan.lapic_timer_vector == FAULT_NO_VALUE)
		return vector;
	kprintf("inject: lapic-timer-vector: LVT timer vector 0x%02x (was 0x%02x)\n",
		(unsigned int)fault_plan.lapic_timer_vector, vector);
	return (uint8_t)fault_plan.lapic_timer_vector;
}

void fault_apply_devices(void)
{
	if (fault_plan.rtc) {
		rtc_periodic_on();
		kprintf("inject: rtc: RTC periodic interrupt on (IRQ8, slave 8259)\n");
	}
	if (fault_plan.ioapic_vector != FAULT_NO_VALUE) {
		ioapic_route(IOAPIC_PIN_PIT, (uint8_t)fault_plan.ioapic_vector);
		kprintf("inject: ioapic: PIT on I/O APIC pin %u, redirection vector 0x%02x; 8259 "
			"masked\n",
			IOAPIC_PIN_PIT, (unsigned int)fault_plan.ioapic_vector);
	}
}

#ifndef __x86_64__
void df_task_entry(void);
NORETURN void df_task_main(uint32_t error_code);

/* Entered by the task switch with the error code pushed on the task's own stack. */
__asm__(".text\n"
	".global df_task_entry\n"
	".type df_task_entry, @function\n"
	"df_task_entry:\n"
	"\tcall df_task_main\n"
	".size df_task_entry, . - df_task_entry\n");

void df_task_main(uint32_t error_code)
{
	kprintf("\n#DF task: error code 0x%x on its own stack; back-link 0x%x, faulting eip 0x%x "
		"esp 0x%x\n",
		error_code, df_tss.link, tss.eip, tss.esp);
	kprintf("#DF verdict: error code 0x%x present: a real double fault (rip 0x%x)\n",
		error_code, tss.eip);
	lhv_exit(LHV_EXIT_DOUBLE_FAULT);
}
#endif

static void gate_edit(const struct fault *f)
{
	struct idt_gate *g = &idt[f->index & 0xff];
	uint64_t v = f->value;

	switch (f->kind) {
	case LHV_FAULT_GATE_TYPE:
		kprintf("inject: gate-type: idt[0x%02x].type = 0x%x (was 0x%x)\n", f->index,
			(unsigned int)v & GATE_TYPE_MASK, g->type_attr & GATE_TYPE_MASK);
		g->type_attr = (uint8_t)((g->type_attr & ~GATE_TYPE_MASK) | (v & GATE_TYPE_MASK));
		break;
	case LHV_FAULT_GATE_SEL:
		kprintf("inject: gate-sel: idt[0x%02x].selector = 0x%02x (was 0x%02x)\n", f->index,
			(unsigned int)v, g->selector);
		g->selector = (uint16_t)v;
		break;
	case LHV_FAULT_GATE_PRESENT:
		kprintf("inject: gate-present: idt[0x%02x].present = %u\n", f->index,
			(unsigned int)(v != 0));
		g->type_attr = (uint8_t)(v ? g->type_attr | GATE_PRESENT : g->type_attr & ~GATE_PRESENT);
		break;
	case LHV_FAULT_GATE_DPL:
		kprintf("inject: gate-dpl: idt[0x%02x].dpl = %u\n", f->index, (unsigned int)v & 3);
		g->type_attr = (uint8_t)((g->type_attr & ~(3u << GATE_DPL_SHIFT)) |
					 ((v & 3) << GATE_DPL_SHIFT));
		break;
	case LHV_FAULT_GATE_OFFSET:
		kprintf("inject: gate-offset: idt[0x%02x].offset = 0x%llx\n", f->index,
			(unsigned long long)v);
		g->offset_low = v & 0xffff;
#ifdef __x86_64__
		g->offset_mid = (v >> 16) & 0xffff;
		g->offset_high = (uint32_t)(v >> 32);
#else
		g->offset_high = (v >> 16) & 0xffff;
#endif
		break;
	case LHV_FAULT_GATE_IST:
#ifdef __x86_64__
		kprintf("inject: ist: idt[0x%02x].ist = %u\n", f->index, (unsigned int)v & 7);
		g->ist = v & 7;
#endif
		break;
	default:
		break;
	}
}

#ifdef __x86_64__
#define IRET_SS_NOTE(kind) ""
#else
#define IRET_SS_NOTE(kind) ((kind) == LHV_FAULT_IRET_SS ? " (if it came from ring 3: only then iret pops SS)" : "")
#endif

void fault_apply_idt(void)
{
	if (fault_plan.exception_gates != FAULT_NO_VALUE) {
		for (unsigned int v = 0; v < 32; v++)
			if (!((fault_plan.exception_gates >> v) & 1))
				idt[v].type_attr &= (uint8_t)~GATE_PRESENT;
		kprintf("inject: exc: exception gates present: mask 0x%08lx\n",
			(unsigned long)fault_plan.exception_gates);
	}
#ifdef __x86_64__
	if (fault_plan.df_ist != FAULT_NO_VALUE) {
		idt[VEC_DOUBLE_FAULT].ist = (uint8_t)fault_plan.df_ist;
		kprintf("inject: df-ist: idt[0x08].ist = %d\n", (int)fault_plan.df_ist);
	}
#else
	if (fault_plan.df_task) {
		struct idt_gate *g = &idt[VEC_DOUBLE_FAULT];

		tss_init_df_task((uintptr_t)df_task_entry);
		g->offset_low = g->offset_high = 0;
		g->selector = SEL_DF_TSS;
		g->type_attr = GATE_TASK;
		kprintf("inject: df-task: idt[0x08] = task gate to TSS 0x%02x (own stack)\n",
			SEL_DF_TSS);
	}
#endif
	for (unsigned int i = 0; i < fault_plan.count; i++)
		gate_edit(&fault_plan.faults[i]);
	for (unsigned int i = 0; i < fault_plan.count; i++) {
		const struct fault *f = &fault_plan.faults[i];
		if (f->kind != LHV_FAULT_IDT_LIMIT)
			continue;
		idt_load((uint16_t)f->value);
		kprintf("inject: idt-limit: lidt limit 0x%lx (was 0x%lx)\n", (unsigned long)f->value,
			(unsigned long)(sizeof(struct idt_gate) * IDT_ENTRIES - 1));
	}
	for (unsigned int i = 0; i < fault_plan.count; i++) {
		const struct fault *f = &fault_plan.faults[i];
		static const char *const names[] = {
			[LHV_FAULT_IRET_CS] = "cs", [LHV_FAULT_IRET_SS] = "ss", [LHV_FAULT_IRET_RIP] = "rip"};
		if (f->kind == LHV_FAULT_IRET_CS || f->kind == LHV_FAULT_IRET_SS ||
		    f->kind == LHV_FAULT_IRET_RIP)
			kprintf("inject: iret-%s: the first PIT interrupt returns with %s = 0x%llx%s\n",
				names[f->kind], names[f->kind], (unsigned long long)f->value,
				IRET_SS_NOTE(f->kind));
	}
}

/* Does this frame hold SS:ESP? Always in 64-bit mode; in 32-bit mode only when the
 * interrupt came from an outer ring (Intel SDM Vol. 3A §6.12.1). */
static bool frame_has_ss(const struct int_frame *f)
{
#ifdef __x86_64__
	(void)f;
	return true;
#else
	return (f->cs & 3) != 0;
#endif
}

void fault_corrupt_return_frame(struct int_frame *f)
{
	static bool done;

	if (done)
		return;
	done = true;
	for (unsigned int i = 0; i < fault_plan.count; i++) {
		const struct fault *x = &fault_plan.faults[i];
		if (x->kind == LHV_FAULT_IRET_CS)
			f->cs = (uintptr_t)x->value;
		else if (x->kind == LHV_FAULT_IRET_SS && frame_has_ss(f))
			f->ss = (uintptr_t)x->value;
		else if (x->kind == LHV_FAULT_IRET_RIP)
			f->ip = (uintptr_t)x->value;
	}
}

uint8_t fault_user_int_vector(void)
{
	for (unsigned int i = 0; i < fault_plan.count; i++)
		if (fault_plan.faults[i].kind == LHV_FAULT_USER_INT)
			return (uint8_t)fault_plan.faults[i].value;
	return 0;
}
