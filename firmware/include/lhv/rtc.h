/* The MC146818 real-time clock's periodic interrupt (IRQ8 on the slave 8259). */
#ifndef LHV_RTC_H
#define LHV_RTC_H

/* Turn on the periodic interrupt at the rate the BIOS left in register A (1024 Hz). */
void rtc_periodic_on(void);

#endif
