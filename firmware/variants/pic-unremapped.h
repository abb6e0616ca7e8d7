/*
 * pic-unremapped: the 8259 PIC is never initialised, so it keeps the BIOS mapping
 * (master base 0x08). The first PIT interrupt (IRQ0) arrives on vector 8, the #DF
 * vector, with no error code: the real LHV bug.
 */
#define LHV_REMAP_PIC 0
