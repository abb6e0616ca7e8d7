#!/usr/bin/env bash
# The end of QEMU's -d int log of one firmware build, as docs/firmware.md shows it: boots
# firmware/build/ARCH/lhv-VARIANT.elf the way that page's "Booting" section does (TCG,
# -no-reboot, isa-debug-exit, -d int,cpu_reset; the serial output thrown away) and prints
# the last N event lines (Servicing hardware INT, check_exception, v=, Triple fault), each
# without its pc= and env->regs[R_EAX]= fields.
# usage: bash docs/examples/int-log.sh VARIANT [N [ARCH]]
set -euo pipefail
variant=$1 lines=${2:-8} arch=${3:-amd64}
qemu=${LHVDBG_QEMU:-qemu-system-x86_64}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$qemu" -kernel "firmware/build/$arch/lhv-$variant.elf" -display none -monitor none \
    -no-reboot -serial file:/dev/null -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
    -d int,cpu_reset -D "$log" || true
grep -E '^(Servicing hardware INT|check_exception|Triple fault)|: v=' "$log" \
    | tail -n "$lines" \
    | sed -E 's/ pc=[0-9a-f]+//; s/ env->regs\[R_EAX\]=[0-9a-f]+//'
