"""Wall time of ``lhvdbg break-on-df`` against plain QEMU reaching ``v=08`` (prints only).

Measured in one run, alternating, on the default firmware (amd64 ``pic-unremapped``):

* lhvdbg: the CLI as a user runs it, ``lhvdbg break-on-df --json`` in a subprocess
  (Python start-up, QEMU and gdb start, run to IDT[8]'s handler, capture, diagnose,
  render, clean-up), with Python's bytecode cache on as in any installation (in a private
  directory: the caller's PYTHONDONTWRITEBYTECODE would otherwise recompile every module
  on every run);
* baseline: ``qemu-system-x86_64 -kernel K -d int -D LOG`` started the same way, stopped
  as soon as `` v=08 `` appears in its log (polled every millisecond) — the least any
  tool built on QEMU's log must wait.

Prints the medians and their ratio (goal: at most 4). Usage:
``.venv/bin/python bench/bench_break_on_df.py [--repeat N]``. Never asserts on timing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KERNEL = ROOT / "firmware" / "build" / "amd64" / "lhv-pic-unremapped.elf"
LHVDBG = [sys.executable, "-m", "lhvdbg"]
GOAL = 4.0


def python_env(workdir: Path) -> dict[str, str]:
    """The environment of an installed lhvdbg: bytecode cached (in a private directory,
    so the tree stays clean) even when the caller sets PYTHONDONTWRITEBYTECODE."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    return env


def time_lhvdbg(env: dict[str, str]) -> tuple[float, str]:
    """One ``lhvdbg break-on-df --json`` run: seconds, and the outcome it printed."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [*LHVDBG, "break-on-df", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"lhvdbg break-on-df failed: {proc.stderr.strip()}")
    return elapsed, str(json.loads(proc.stdout)["outcome"])


def time_qemu(workdir: Path) -> float:
    """QEMU with ``-d int`` from start until `` v=08 `` is in its log, in seconds."""
    log = workdir / "int.log"
    log.unlink(missing_ok=True)
    argv = [
        "qemu-system-x86_64",
        "-kernel",
        str(KERNEL),
        "-display",
        "none",
        "-serial",
        f"file:{workdir / 'serial.txt'}",
        "-monitor",
        "none",
        "-no-reboot",
        "-d",
        "int",
        "-D",
        str(log),
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = t0 + 30
        while time.perf_counter() < deadline:
            try:
                if b" v=08 " in log.read_bytes():
                    return time.perf_counter() - t0
            except FileNotFoundError:
                pass
            if proc.poll() is not None:
                if log.exists() and b" v=08 " in log.read_bytes():
                    return time.perf_counter() - t0
                raise SystemExit("QEMU exited before v=08 appeared in its log")
            time.sleep(0.001)
        raise SystemExit("v=08 did not appear within 30 s")
    finally:
        proc.kill()
        proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs of each (default 7)")
    args = parser.parse_args()
    if not KERNEL.exists():
        print(f"{KERNEL} is not built: run make -C firmware", file=sys.stderr)
        return 1
    tool: list[float] = []
    base: list[float] = []
    outcomes: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="bench-df-") as tmp:
        os.chmod(tmp, 0o700)
        workdir = Path(tmp)
        env = python_env(workdir)
        time_qemu(workdir)  # warm the page cache for both, and lhvdbg's bytecode cache
        time_lhvdbg(env)
        for _ in range(args.repeat):
            elapsed, outcome = time_lhvdbg(env)
            tool.append(elapsed)
            outcomes.add(outcome)
            base.append(time_qemu(workdir))
    t, b = statistics.median(tool), statistics.median(base)
    print(f"kernel: {KERNEL.relative_to(ROOT)} ({args.repeat} runs each, alternating)")
    print(
        f"lhvdbg break-on-df --json (CLI, subprocess): median {t * 1e3:8.1f} ms  "
        f"outcome {', '.join(sorted(outcomes))}"
    )
    print(f"qemu -d int until ' v=08 ' in the log:      median {b * 1e3:8.1f} ms")
    print(f"ratio: {t / b:.2f} (goal <= {GOAL:g})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
