/* The multiboot (version 1) information structure, the fields this kernel reads. */
#ifndef LHV_MULTIBOOT_H
#define LHV_MULTIBOOT_H

#include "lhv/types.h"

#define MB_INFO_CMDLINE (1u << 2)

struct __attribute__((packed)) multiboot_info {
	uint32_t flags;
	uint32_t mem_lower;
	uint32_t mem_upper;
	uint32_t boot_device;
	uint32_t cmdline; /* physical address of a NUL-terminated string, if MB_INFO_CMDLINE */
};

#endif
