"""``lhvdbg compare GOOD BAD``: run two kernels, align their histories (``lhvdbg trace``)
and say where the second first diverges in a way that matters.

GOOD and BAD are each a kernel ELF path, a bundled firmware variant name
(``pic-unremapped``, ``no-ltr``...; ``firmware/build/ARCH/lhv-NAME.elf``), or a
fault-injection command line for the bundled good firmware (``"fault=rsp0:guard"``,
``"pic-base=0x08"``; docs/fault-matrix.md). With one argument it is BAD and GOOD is the
bundled good firmware of the same architecture; with none, BAD is the default variant.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from lhvdbg.commands._html import add_html_argument, check_html_path, write_html
from lhvdbg.commands.registry import Context, command

if TYPE_CHECKING:
    from lhvdbg.machine.launch import LaunchConfig
    from lhvdbg.x86.cpustate import Arch

DEFAULT_TIMEOUT = 10.0
GOOD_VARIANT = "good"
#: The words of the firmware's fault-injection and run-setting command line.
INJECTION_WORDS = frozenset(
    {
        "fault",
        "exc",
        "df-ist",
        "df-task",
        "no-ltr",
        "pic-base",
        "rtc",
        "lapic-timer-vector",
        "ioapic",
        "user",
        "overflow",
        "ticks",
        "every",
        "hz",
        "softint",
    }
)


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="*", metavar="GOOD BAD", help="[GOOD] BAD (see above)")
    parser.add_argument("--arch", choices=("amd64", "i386"), default="amd64")
    parser.add_argument("--qemu", metavar="PATH", help="QEMU binary (default $LHVDBG_QEMU)")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS", help="per run"
    )
    add_html_argument(parser)


def config_for(spec: str, arch: str, qemu: str | None) -> LaunchConfig:
    """The launch configuration a GOOD/BAD argument names (UsageError if none)."""
    from lhvdbg.errors import UsageError
    from lhvdbg.machine.launch import LaunchConfig, firmware_dir, firmware_path

    cpu: Arch = "i386" if arch == "i386" else "amd64"
    path = Path(spec).expanduser()
    if "/" in spec or spec.endswith(".elf"):
        if not path.is_file():
            raise UsageError(f"kernel not found: {spec}")
        return LaunchConfig(kernel=path, qemu=qemu)
    if firmware_path(cpu, spec).is_file():
        return LaunchConfig.for_variant(spec, cpu, qemu=qemu)
    words = spec.split()
    if words and all(w.split("=", 1)[0] in INJECTION_WORDS for w in words):
        return LaunchConfig.for_variant(GOOD_VARIANT, cpu, qemu=qemu, append=spec)
    built = sorted(
        p.stem.removeprefix("lhv-") for p in (firmware_dir() / "build" / arch).glob("lhv-*.elf")
    )
    raise UsageError(
        f"{spec!r} is not a kernel path, a built variant ({', '.join(built) or 'none built'}) "
        f"or a fault-injection command line (docs/fault-matrix.md)"
    )


@command(
    "compare",
    "run a good and a bad kernel, align what each programmed, and name the first "
    "divergence that matters",
    configure=_configure,
    category="diagnosis",
    json="{first_divergence: {good, bad, kind, explanation}, differences: [...]}",
)
def run(args: argparse.Namespace, ctx: Context) -> int:
    """Record both histories, compare, render."""
    from lhvdbg.commands.trace import record
    from lhvdbg.diagnose.history import compare_histories
    from lhvdbg.errors import UsageError
    from lhvdbg.machine.launch import DEFAULT_VARIANT

    runs = list(args.runs)
    if len(runs) > 2:
        raise UsageError(f"compare takes at most two runs, GOOD and BAD (got {len(runs)})")
    if args.timeout <= 0:
        raise UsageError(f"--timeout {args.timeout:g}: give a positive number of seconds")
    check_html_path(args.html)
    if len(runs) < 2:
        runs = [GOOD_VARIANT, *(runs or [DEFAULT_VARIANT])]
    good_config = config_for(runs[0], args.arch, args.qemu)
    bad_config = config_for(runs[1], args.arch, args.qemu)
    good = record(good_config, timeout=args.timeout)
    bad = record(bad_config, timeout=args.timeout)
    comparison = compare_histories(good, bad)
    if args.html is not None:
        from lhvdbg.ui.html import comparison_page

        accel = bad_config.resolved_accel()
        write_html(args.html, comparison_page(comparison, runs[0], runs[1], accel=accel))
    if args.json:
        data = comparison.to_dict()
        data["good"]["run"], data["bad"]["run"] = runs
        ctx.print_json(data)
        return 0
    from lhvdbg.ui.history import render_comparison

    ctx.print(render_comparison(comparison, runs[0], runs[1]))
    return 0
