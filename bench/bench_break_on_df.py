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

Prints the medians and the ratio (the goal of issue 10 §5: at most 2.5): the median of
the paired runs' ratios, each lhvdbg run against the QEMU run right after it, so that a
drift in the host's speed (a shared 2-core VM) falls on both sides; the ratio of the
medians is printed beside it. With
``--phases``, also when each phase of an lhvdbg run ended, in ms from its spawn (the same
CLI run with a probe that wraps the functions named in :data:`PHASES`; the probe adds a
little time of its own). Usage:
``.venv/bin/python bench/bench_break_on_df.py [--repeat N] [--phases]``. Never asserts on
timing.
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
GOAL = 2.5  # issue 10 §5: lhvdbg break-on-df <= 2.5x plain QEMU reaching v=08

# (module, function, when it is marked, label): the milestones of one run
PHASES = (
    ("lhvdbg.cli", "_main", "call", "command line parsed from here"),
    ("lhvdbg.machine.gdbmi", "GdbMi.__init__", "call", "gdb spawned"),
    ("lhvdbg.machine.qemu", "QemuProcess.__init__", "call", "QEMU spawned"),
    ("lhvdbg.machine.session", "Session._start", "return", "session up (gdb connected)"),
    ("lhvdbg.commands._boot", "run_to_entry", "return", "at the kernel's entry"),
    ("lhvdbg.machine.session", "Session.run_to_vector", "return", "at IDT[8]'s handler"),
    ("lhvdbg.commands.break_on_df", "WarmUp._run", "return", "(warm-up thread done)"),
    ("lhvdbg.commands._diagnosis", "collect_evidence", "return", "evidence collected"),
    ("lhvdbg.diagnose.report", "make_report", "return", "diagnosed"),
    ("lhvdbg.machine.session", "Session.close", "return", "QEMU and gdb closed"),
    ("lhvdbg.commands.break_on_df", "_print", "return", "report printed"),
)

# Run as ``python -c PROBE``: marks each PHASES milestone on fd 2 as ``@phase LABEL MS``
# (ms since T_SPAWN, the parent's time.time() at spawn), then runs ``python -m lhvdbg``.
PROBE = """
import functools, importlib.abc, os, runpy, sys, time
SPAWN = float(os.environ["T_SPAWN"])
def mark(label):
    os.write(2, f"@phase {label} {(time.time() - SPAWN) * 1e3:.1f}\\n".encode())
mark("Python started (site, editable finder)")
PHASES = @PHASES@
def wrap(owner, name, when, label):
    orig = getattr(owner, name)
    @functools.wraps(orig)
    def probe(*args, **kwargs):
        if when == "call":
            mark(label)
        try:
            return orig(*args, **kwargs)
        finally:
            if when == "return":
                mark(label)
    setattr(owner, name, probe)
class Hook(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        wanted = [p for p in PHASES if p[0] == fullname]
        if not wanted:
            return None
        for finder in sys.meta_path:
            spec = None if finder is self else finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        run = spec.loader.exec_module
        def exec_module(module):
            run(module)
            for _, dotted, when, label in wanted:
                *outer, name = dotted.split(".")
                try:  # a tree without this function (an older commit) skips its mark
                    owner = functools.reduce(getattr, outer, module)
                    wrap(owner, name, when, label)
                except AttributeError:
                    pass
        spec.loader.exec_module = exec_module
        return spec
sys.meta_path.insert(0, Hook())
sys.argv = ["lhvdbg", "break-on-df", "--json"]
runpy.run_module("lhvdbg", run_name="__main__", alter_sys=True)
""".replace("@PHASES@", repr(PHASES))


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


def lhvdbg_phases(env: dict[str, str]) -> tuple[list[tuple[str, float]], float]:
    """One probed run: each milestone's label and ms from spawn, and the process's end."""
    env = {**env, "T_SPAWN": repr(time.time())}
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    ended = (time.time() - t0) * 1e3
    if proc.returncode != 0:
        raise SystemExit(f"lhvdbg break-on-df (probed) failed: {proc.stderr.strip()}")
    marks = []
    for line in proc.stderr.splitlines():
        if line.startswith("@phase "):
            label, ms = line[len("@phase ") :].rsplit(" ", 1)
            marks.append((label, float(ms)))
    return marks, ended


def print_phases(env: dict[str, str], repeat: int) -> None:
    """The median time of each milestone over ``repeat`` probed runs, and the step to it."""
    runs = [lhvdbg_phases(env) for _ in range(repeat)]
    at: dict[str, list[float]] = {}
    for marks, ended in runs:
        for label, ms in [*marks, ("process ended", ended)]:
            at.setdefault(label, []).append(ms)
    labels = sorted(at, key=lambda label: statistics.median(at[label]))
    print(f"phases of lhvdbg break-on-df --json (median of {repeat} probed runs, ms from spawn):")
    previous = 0.0
    for label in labels:
        median = statistics.median(at[label])
        print(f"  {label:42s} {median:7.1f}  (+{median - previous:6.1f})")
        previous = median


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
    parser.add_argument("--repeat", type=int, default=11, help="runs of each (default 11)")
    parser.add_argument(
        "--phases", action="store_true", help="also time each phase of an lhvdbg run"
    )
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
        if args.phases:
            print_phases(env, args.repeat)
    t, b = statistics.median(tool), statistics.median(base)
    # each lhvdbg run against the QEMU run right after it: the host's speed drifts (a
    # shared 2-core VM), and a pair sees the same drift
    paired = statistics.median(x / y for x, y in zip(tool, base, strict=True))
    print(f"kernel: {KERNEL.relative_to(ROOT)} ({args.repeat} runs each, alternating)")
    print(
        f"lhvdbg break-on-df --json (CLI, subprocess): median {t * 1e3:8.1f} ms  "
        f"outcome {', '.join(sorted(outcomes))}"
    )
    print(f"qemu -d int until ' v=08 ' in the log:      median {b * 1e3:8.1f} ms")
    print(
        f"ratio: {paired:.2f}, the median of the {args.repeat} paired runs' ratios "
        f"(of the medians: {t / b:.2f}); goal <= {GOAL:g}, issue 10 §5"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
