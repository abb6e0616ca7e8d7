/* Freestanding basic types (from the compiler, not libc). */
#ifndef LHV_TYPES_H
#define LHV_TYPES_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define NORETURN __attribute__((noreturn))

#ifdef __x86_64__
#define LHV_ARCH "amd64"
#else
#define LHV_ARCH "i386"
#endif

#endif
