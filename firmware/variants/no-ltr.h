/*
 * no-ltr: the TSS and its descriptor are built but `ltr` never runs, so TR keeps its
 * reset state (selector 0, base 0, limit 0xFFFF). Nothing needs the TSS (no IST, no
 * privilege change), so the run is the same as good: a difference that is harmless.
 */
#define LHV_LOAD_TR 0
