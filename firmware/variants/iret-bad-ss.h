/*
 * iret-bad-ss: the first PIT interrupt is handled, then its return frame carries a code
 * segment selector where a stack (amd64: SS) or code (i386: CS, since a same-privilege
 * iret pops no SS) selector should be: amd64 gets SS=0x08 (code), i386 CS=0x10 (data).
 * `iret` raises #GP(selector); there is no #GP gate, so that becomes a #DF.
 */
#ifdef __x86_64__
#define LHV_IRET_BAD_SELECTOR 0x08
#else
#define LHV_IRET_BAD_SELECTOR 0x10
#endif
#define LHV_EXCEPTION_GATES (0xffffffffu & ~(1u << 13))
