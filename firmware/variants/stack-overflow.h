/*
 * stack-overflow: before `sti`, recurse without bound until the kernel stack runs into
 * the not-present guard page below boot_stack. The #DF gate has no IST, so the #PF and
 * then the #DF are delivered onto the same dead stack: #PF, #DF, triple fault.
 */
#define LHV_STACK_OVERFLOW 1
