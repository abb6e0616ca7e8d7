/*
 * pic-unremapped: the 8259 PIC is never initialised, so it keeps the BIOS mapping
 * (master base 0x08). The first PIT interrupt (IRQ0) arrives on vector 8, the #DF
 * vector, with no error code: the real LHV bug.
 *
 * On amd64 LHV had also never run `ltr` (TR kept its reset state, which QEMU prints as
 * `TR =0000 0000000000000000 0000ffff 00008b00 DPL=0 TSS64-busy`): the red herring that
 * made the TSS look guilty. The i386 LHV had added a TSS by then, so it loads TR.
 */
#define LHV_REMAP_PIC 0
#if defined(__x86_64__)
#define LHV_LOAD_TR 0
#endif
