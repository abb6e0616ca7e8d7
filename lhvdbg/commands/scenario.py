"""``lhvdbg scenario run|list``: run declarative scenario files (one QEMU each).

``run [PATH...]`` takes files or directories (default: ``scenarios/``), prints a line per
scenario (the failing assertion with expected and actual values), ``-j N`` runs N at a
time in worker processes, ``--junit FILE`` writes JUnit XML; the exit status is 0 only if
every scenario passed. A malformed file stops everything with one line naming the file,
line and field (exit 2). ``list`` shows what the files declare.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from lhvdbg.commands.registry import Context, command
from lhvdbg.errors import UsageError

if TYPE_CHECKING:
    from lhvdbg.scenario.model import Scenario
    from lhvdbg.scenario.runner import ScenarioResult

EXIT_FAILED = 1


def default_paths() -> list[Path]:
    """``./scenarios`` when it exists, else the scenarios shipped beside the package."""
    here = Path("scenarios")
    if here.is_dir():
        return [here]
    import lhvdbg

    return [Path(lhvdbg.__file__).resolve().parents[1] / "scenarios"]


def _configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    run = sub.add_parser("run", help="run scenarios; exit 0 only if all pass")
    run.add_argument("paths", nargs="*", metavar="PATH", help="files or directories")
    run.add_argument(
        "-j", "--jobs", type=int, default=1, metavar="N", help="run N scenarios at a time"
    )
    run.add_argument("--junit", metavar="FILE", help="write JUnit XML results to FILE")
    run.add_argument(
        "-k", "--select", metavar="TEXT", help="only scenarios whose file or name contains TEXT"
    )
    run.add_argument(
        "--accel", choices=("tcg", "kvm", "auto"), help="override every scenario's accelerator"
    )
    run.add_argument("--json", action="store_true", help="results as JSON")
    run.add_argument("--worker-result", metavar="FILE", help=argparse.SUPPRESS)
    listing = sub.add_parser("list", help="list scenarios and what they run")
    listing.add_argument("paths", nargs="*", metavar="PATH", help="files or directories")
    listing.add_argument("--json", action="store_true", help="as JSON")


def load_all_scenarios(
    paths: list[str], select: str | None = None, accel: str | None = None
) -> list[Scenario]:
    """Every scenario named by ``paths`` (ScenarioError at the first malformed file)."""
    from dataclasses import replace

    from lhvdbg.scenario.loader import collect_files, load_scenario

    files = collect_files([Path(p) for p in paths] or default_paths())
    scenarios = [load_scenario(f) for f in files]
    if select:
        scenarios = [s for s in scenarios if select in str(s.path) or select in s.name]
    if accel:
        scenarios = [replace(s, accel=accel) for s in scenarios]  # type: ignore[arg-type]
    if not scenarios:
        raise UsageError(f"no scenarios in {', '.join(paths) or 'scenarios/'}")
    return scenarios


@command(
    "scenario",
    "run or list declarative scenario files (TOML)",
    configure=_configure,
    category="scenarios",
    where={"cli"},
)
def run_scenario_command(args: argparse.Namespace, ctx: Context) -> int:
    if args.action == "list":
        return _list(args, ctx)
    if args.jobs < 1:
        raise UsageError(f"-j must be at least 1, got {args.jobs}")
    scenarios = load_all_scenarios(args.paths, args.select, args.accel)
    if args.worker_result:
        return _worker(scenarios, Path(args.worker_result))
    start = time.monotonic()
    if args.jobs == 1 or len(scenarios) == 1:
        results = _run_here(scenarios, args, ctx)
    else:
        results = _run_parallel(scenarios, args, ctx)
    elapsed = time.monotonic() - start
    if args.junit:
        from lhvdbg.scenario.junit import write_junit

        write_junit(results, args.junit)
    if args.json:
        ctx.print_json({"results": [r.to_dict() for r in results], "elapsed": round(elapsed, 3)})
    else:
        ctx.print(_summary(results, elapsed, args.jobs), soft_wrap=True)
    return 0 if results and all(r.passed for r in results) else EXIT_FAILED


def _run_here(
    scenarios: list[Scenario], args: argparse.Namespace, ctx: Context
) -> list[ScenarioResult]:
    from lhvdbg.commands.registry import REGISTRY
    from lhvdbg.scenario.runner import run_scenario

    results = []
    for scenario in scenarios:
        result = run_scenario(scenario, registry=REGISTRY)
        results.append(result)
        _show(result, args, ctx)
    return results


def _worker(scenarios: list[Scenario], out: Path) -> int:
    """Internal (``-j``): run the scenarios given, write their results as JSON to ``out``."""
    from lhvdbg.commands.registry import REGISTRY
    from lhvdbg.scenario.runner import run_scenario

    results = [run_scenario(s, registry=REGISTRY).to_dict() for s in scenarios]
    out.write_text(json.dumps(results))
    return 0


def _run_parallel(
    scenarios: list[Scenario], args: argparse.Namespace, ctx: Context
) -> list[ScenarioResult]:
    """Run each scenario in a worker process, ``args.jobs`` at a time, from this thread."""
    from lhvdbg.machine.process import popen_owned
    from lhvdbg.scenario.runner import ScenarioResult

    pending = list(enumerate(scenarios))
    running: dict[int, tuple[subprocess.Popen[bytes], Path, Scenario]] = {}
    done: dict[int, ScenarioResult] = {}
    with tempfile.TemporaryDirectory(prefix="lhvdbg-scenarios-") as tmp:
        try:
            while pending or running:
                while pending and len(running) < args.jobs:
                    index, scenario = pending.pop(0)
                    out = Path(tmp) / f"{index}.json"
                    argv = [sys.executable, "-m", "lhvdbg", "scenario", "run"]
                    argv += ["--worker-result", str(out), str(scenario.path)]
                    if args.accel:
                        argv += ["--accel", args.accel]
                    err = (Path(tmp) / f"{index}.err").open("wb")
                    with err:
                        process = popen_owned(
                            argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err
                        )
                    running[index] = (process, out, scenario)
                for index, (process, out, scenario) in list(running.items()):
                    if process.poll() is None:
                        continue
                    del running[index]
                    result = _collect(process, out, scenario, ScenarioResult)
                    done[index] = result
                    _show(result, args, ctx)
                time.sleep(0.02)
        except KeyboardInterrupt:
            _stop_workers([p for p, _, _ in running.values()])
            raise
    return [done[i] for i in sorted(done)]


def _collect(
    process: subprocess.Popen[bytes],
    out: Path,
    scenario: Scenario,
    result_type: type[ScenarioResult],
) -> ScenarioResult:
    try:
        (data,) = json.loads(out.read_text())
        return result_type.from_dict(data)
    except (OSError, ValueError, TypeError) as exc:
        errors = out.with_suffix(".err")
        text = errors.read_text(errors="replace").strip() if errors.exists() else ""
        last = text.splitlines()[-1] if text else f"no result ({exc})"
        return result_type(
            name=scenario.name,
            label=scenario.label,
            file=str(scenario.path),
            status="error",
            elapsed=0.0,
            failures=[f"worker exited with status {process.returncode}: {last}"],
        )


def _stop_workers(processes: list[subprocess.Popen[bytes]]) -> None:
    """Ctrl-C: let each worker close its QEMU and gdb (SIGINT), then make sure."""
    for p in processes:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGINT)
    deadline = time.monotonic() + 5
    for p in processes:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _show(result: ScenarioResult, args: argparse.Namespace, ctx: Context) -> None:
    """The result line of one scenario (none with ``--json``), never wrapped: one line per
    failure in a CI log."""
    if args.json:
        return
    from lhvdbg.ui.scenarios import result_line

    line = result_line(
        result.status, result.label, result.elapsed, result.accel, result.file, result.failures
    )
    ctx.print(line, soft_wrap=True)


def _summary(results: list[ScenarioResult], elapsed: float, jobs: int) -> object:
    from lhvdbg.ui.scenarios import summary_line

    return summary_line(
        sum(r.status == "pass" for r in results),
        sum(r.status == "fail" for r in results),
        sum(r.status == "error" for r in results),
        elapsed,
        jobs,
    )


def _list(args: argparse.Namespace, ctx: Context) -> int:
    scenarios = load_all_scenarios(args.paths)
    rows = [
        {
            "label": s.label,
            "file": str(s.path),
            "name": s.name,
            "arch": s.arch,
            "kernel": s.variant or str(s.kernel),
            "accel": s.accel,
            "steps": len(s.steps),
            "assertions": len(s.expects) + sum(len(st.expects) for st in s.steps),
            "tags": list(s.tags),
        }
        for s in scenarios
    ]
    if args.json:
        ctx.print_json(rows)
        return 0
    from lhvdbg.ui.scenarios import scenario_table

    ctx.print(scenario_table(rows))
    return 0
