/*
 * RTC periodic interrupt (MC146818 data sheet): register B bit 6 (PIE) enables it at the
 * rate of register A; reading register C acknowledges. Index writes set bit 7 to keep
 * NMI off while the registers are touched.
 */
#include "lhv/rtc.h"
#include "lhv/abi.h"
#include "lhv/io.h"

#define CMOS_NMI_OFF 0x80
#define RTC_REG_B 0x0b
#define RTC_REG_C 0x0c
#define RTC_B_PIE 0x40

static uint8_t cmos_read(uint8_t reg)
{
	outb(LHV_PORT_CMOS_INDEX, CMOS_NMI_OFF | reg);
	return inb(LHV_PORT_CMOS_DATA);
}

static void cmos_write(uint8_t reg, uint8_t v)
{
	outb(LHV_PORT_CMOS_INDEX, CMOS_NMI_OFF | reg);
	outb(LHV_PORT_CMOS_DATA, v);
}

void rtc_periodic_on(void)
{
	cmos_write(RTC_REG_B, cmos_read(RTC_REG_B) | RTC_B_PIE);
	(void)cmos_read(RTC_REG_C);
}
