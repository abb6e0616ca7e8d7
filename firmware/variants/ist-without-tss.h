/*
 * ist-without-tss: the PIT gate (0x20) and the #DF gate use IST1, but `ltr` never ran:
 * TR still has base 0, so the CPU reads the IST1 pointer from linear address 0x24
 * (inside the real-mode IVT) and pushes the interrupt frame there.
 */
#define LHV_LOAD_TR 0
#define LHV_TIMER_IST 1
#define LHV_DF_IST 1
