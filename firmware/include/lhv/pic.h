/* The two cascaded 8259A programmable interrupt controllers. */
#ifndef LHV_PIC_H
#define LHV_PIC_H

#include "lhv/types.h"

#define PIC_MASTER_CMD 0x20
#define PIC_MASTER_DATA 0x21
#define PIC_SLAVE_CMD 0xa0
#define PIC_SLAVE_DATA 0xa1
#define PIC_EOI 0x20 /* OCW2: non-specific end of interrupt */

/* ICW1..ICW4: master IRQs on master_base.., slave IRQs on slave_base..; then the masks. */
void pic_init(uint8_t master_base, uint8_t slave_base, uint16_t mask);
void pic_eoi(unsigned int irq);
uint16_t pic_read_isr(void);

#endif
