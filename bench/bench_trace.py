"""How much ``lhvdbg trace`` slows a run down: the same firmware run to its end by a
plain session (``cont`` until it exits) and by ``record_history`` (breakpoints on the
kernel's instructions, trace events, the ``-d int`` log), alternating, medians.

    .venv/bin/python bench/bench_trace.py [--variant good] [--rounds 5] [--qemu PATH]
"""

from __future__ import annotations

import argparse
import statistics
import time

from lhvdbg.machine.session import LaunchConfig, Session
from lhvdbg.machine.trace import record_history, with_trace_events


def plain(config: LaunchConfig) -> float:
    with Session(config) as session:
        started = time.monotonic()
        session.cont(timeout=30)
        return time.monotonic() - started


def traced(config: LaunchConfig) -> tuple[float, int]:
    with Session(with_trace_events(config)) as session:
        started = time.monotonic()
        history = record_history(session, timeout=30)
        return time.monotonic() - started, len(history.events)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", default="good")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--qemu")
    args = parser.parse_args()
    config = LaunchConfig.for_variant(args.variant, "amd64", qemu=args.qemu)
    plain_times, traced_times, ratios = [], [], []
    events = 0
    for _ in range(args.rounds):
        p = plain(config)
        t, events = traced(config)
        plain_times.append(p)
        traced_times.append(t)
        ratios.append(t / p)
    print(f"variant {args.variant}, {events} events, {args.rounds} rounds")
    print(f"plain run to the end:  median {statistics.median(plain_times) * 1000:.0f} ms")
    print(f"traced run to the end: median {statistics.median(traced_times) * 1000:.0f} ms")
    print(f"slowdown: median {statistics.median(ratios):.1f}x")


if __name__ == "__main__":
    main()
