"""The shared vocabulary of issue 9 — check ids, cause ids, outcomes — typed once, here.

It is the contract the delivery model, the rules, the fault matrix and the docs agree on,
so the tests hold it independently of the code under test (which keeps its own lists:
``lhvdbg.x86.cpuview.CHECKS``, the rule registry).
"""

from __future__ import annotations

DELIVERY_CHECKS = [
    "idt-limit",
    "gate-type",
    "gate-dpl",
    "gate-present",
    "task-gate-tss",
    "cs-null",
    "cs-limit",
    "cs-type",
    "cs-dpl",
    "cs-long",
    "cs-present",
    "target-offset",
    "tss-limit",
    "stack-pointer",
    "ss0-null",
    "ss0-invalid",
    "ss0-present",
    "stack-push",
]
IRET_CHECKS = [
    f"iret-{x}"
    for x in [
        "cs-null",
        "cs-limit",
        "cs-type",
        "cs-rpl",
        "cs-dpl",
        "cs-present",
        "ss-null",
        "ss-limit",
        "ss-rpl",
        "ss-type",
        "ss-dpl",
        "ss-present",
        "rip",
    ]
]
EVENT_CHECKS = ["hardware-on-exception-vector", "spurious-irq"]
CHECK_IDS = frozenset(DELIVERY_CHECKS + IRET_CHECKS + EVENT_CHECKS)
CAUSE_IDS = frozenset(
    [
        "pic-not-remapped",
        "lapic-vector-in-exception-range",
        "ioapic-vector-in-exception-range",
        "spurious-irq",
        "pic-not-masked-with-apic",
        "idt-limit-too-short",
        "gate-type-invalid",
        "ring3-int-gate-dpl",
        "gate-not-present",
        "gate-selector-invalid",
        "gate-offset-invalid",
        "task-gate-invalid",
        "ist-without-tss",
        "tss-limit-too-short",
        "ist-pointer-invalid",
        "ist-stack-unmapped",
        "tss-rsp0-invalid",
        "tss-ss0-invalid",
        "stack-overflow",
        "iret-bad-selector",
        "iret-bad-rip",
        "unexplained-chain",
    ]
)
OUTCOMES = frozenset(
    {"hardware-interrupt-on-vector-8", "double-fault", "triple-fault", "no-fault", "exception"}
)
