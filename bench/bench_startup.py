"""Start-up time of ``lhvdbg --version`` and ``lhvdbg --help`` against a bare
``python -c pass`` of the same virtualenv (same interpreter, same site-packages, same
editable-install finder): medians over interleaved runs, and their ratios.

Target (issue 10 §5): each ratio at most 1.5. Prints figures; never asserts on timing.
Run: ``.venv/bin/python bench/bench_startup.py [RUNS]``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET = 1.5
BIN = Path(sys.executable).parent
CASES = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "lhvdbg --version": [str(BIN / "lhvdbg"), "--version"],
    "lhvdbg --help": [str(BIN / "lhvdbg"), "--help"],
}


def wall(argv: list[str]) -> float:
    """Seconds from spawn to exit of one run (output discarded)."""
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def measure(runs: int) -> dict[str, float]:
    """Median wall time of each case; the cases take turns so machine noise hits all."""
    for argv in CASES.values():  # warm the page cache and the bytecode cache
        wall(argv)
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(runs):
        for name, argv in CASES.items():
            times[name].append(wall(argv))
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 25
    medians = measure(runs)
    base = medians["python -c pass"]
    print(f"start-up, median of {runs} runs (baseline: python -c pass = {base * 1000:.1f} ms)")
    for name, value in medians.items():
        if name == "python -c pass":
            continue
        ratio = value / base
        verdict = "ok" if ratio <= TARGET else "over"
        print(
            f"  {name:<18} {value * 1000:7.1f} ms  ratio {ratio:4.2f}"
            f" (target <= {TARGET}) {verdict}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
