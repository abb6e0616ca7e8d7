/*
 * timer-gate-missing: IDT gate 0x20 (PIT) is not present and, as in blog_os's
 * interrupts chapter, only the #BP and #DF exception gates are installed. IRQ0 raises
 * #NP (error code 0x20*8+2+1 = 0x103), #NP's own gate is missing too, so #NP during #NP
 * delivery becomes a real #DF (error code 0).
 */
#define LHV_TIMER_GATE 0
#define LHV_EXCEPTION_GATES ((1u << 3) | (1u << 8))
