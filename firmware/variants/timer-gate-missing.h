/*
 * timer-gate-missing: IDT gate 0x20 (PIT) is not present and, as in blog_os's
 * interrupts chapter, only the #BP and #DF exception gates are installed. IRQ0 raises
 * #NP (the SDM's error code: 0x20*8 + IDT(2) + EXT(1) = 0x103; QEMU 7.2 TCG reports
 * vector*16+2 = 0x202 in long mode and 0x102 in 32-bit mode), #NP's own gate is missing
 * too, so the #NP during #NP delivery becomes a real #DF (error code 0).
 */
#define LHV_TIMER_GATE 0
#define LHV_EXCEPTION_GATES ((1u << 3) | (1u << 8))
