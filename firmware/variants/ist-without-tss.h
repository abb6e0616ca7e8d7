/*
 * ist-without-tss: the PIT gate (0x20), the #DF gate and the other exception gates use
 * IST1, but `ltr` never ran: TR still has base 0, so the CPU reads the IST1 pointer from
 * linear address 0x24 (inside the real-mode IVT), a non-canonical value. Pushing the
 * frame there faults (#SS), delivering that fault needs IST1 again, and so does the #DF
 * that follows: triple fault.
 */
#define LHV_LOAD_TR 0
#define LHV_TIMER_IST 1
#define LHV_DF_IST 1
#define LHV_EXCEPTION_IST 1
