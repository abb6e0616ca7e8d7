"""``lhvdbg scenario run|list``: run declarative scenario files (one QEMU each).

``run [PATH...]`` takes files or directories (default: ``scenarios/``), prints a line per
scenario (the failing assertion with expected and actual values), ``-j N`` runs N at a
time in worker processes, ``--junit FILE`` writes JUnit XML; the exit status is 0 only if
every scenario passed. A malformed file stops everything with one line naming the file,
line and field (exit 2). ``list`` shows what the files declare.

Scenario files are untrusted data: they may not touch the host (run host commands, open
sockets, write outside their folder or ``--output DIR``) unless ``--allow-host`` is given,
and the result then says what they were allowed (:mod:`lhvdbg.scenario.policy`).

This module is also the scenario runner's way to the registry: :class:`RegistryCommands`
runs a command on a scenario's session and hands back its result as data.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from lhvdbg.commands.registry import Context, HelpShown, Registry, add_json_option, command
from lhvdbg.errors import UsageError

if TYPE_CHECKING:
    from lhvdbg.machine.session import Session
    from lhvdbg.scenario.model import Scenario
    from lhvdbg.scenario.runner import CommandResult, ScenarioResult

EXIT_FAILED = 1


class RegistryCommands:
    """The runner's :class:`~lhvdbg.scenario.runner.CommandHost` over a registry: each call
    parses the command's arguments, runs it in a Context on the scenario's session, and
    returns what it printed and the result it gave as data (``Context.result``)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def call(
        self,
        command: str | Sequence[str],
        *,
        session: Session,
        state: dict[str, Any],
        out: TextIO,
    ) -> CommandResult:
        from lhvdbg.scenario.runner import CommandResult
        from lhvdbg.ui.shell import split_line

        shown = command if isinstance(command, str) else " ".join(command)
        try:
            words = split_line(command) if isinstance(command, str) else list(command)
        except ValueError as exc:
            raise UsageError(f"run: cannot parse {shown!r}: {exc}") from exc
        if not words:
            raise UsageError("run: empty command line")
        cmd = self.registry.get(words[0])
        if "scenario" not in cmd.where:
            raise UsageError(f"{cmd.name} is not offered in scenarios")
        buffer = io.StringIO()
        ctx = Context(
            stdout=buffer,
            color=False,
            width=120,
            target=session.target,
            session=session,
            state=state,
        )
        try:
            args = cmd.parser(prog=cmd.name).parse_args(words[1:])
            status = cmd.run(args, ctx)
        except HelpShown:
            raise UsageError(f"{shown!r}: --help is not a scenario step") from None
        finally:
            out.write(buffer.getvalue())
        output = buffer.getvalue()
        if status != 0:
            lines = output.strip().splitlines()
            last = lines[-1] if lines else "no output"
            raise UsageError(f"{shown!r} exited with status {status}: {last}")
        return CommandResult(output=output, data=ctx.result)


def registry_commands() -> RegistryCommands:
    """A command host over every registered command (for the Python API)."""
    from lhvdbg.commands.registry import load_all

    return RegistryCommands(load_all())


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
    add_json_option(run, "results as JSON")
    run.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="DIR",
        help="folder for the files scenarios capture (relative capture names go here)",
    )
    run.add_argument(
        "--allow-host",
        action="store_true",
        help="trust the files: let them run host commands, open sockets, write anywhere",
    )
    run.add_argument("--worker-result", metavar="FILE", help=argparse.SUPPRESS)
    listing = sub.add_parser("list", help="list scenarios and what they run")
    listing.add_argument("paths", nargs="*", metavar="PATH", help="files or directories")
    add_json_option(listing, "as JSON")


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
    json=None,
)
def run_scenario_command(args: argparse.Namespace, ctx: Context) -> int:
    if args.action == "list":
        return _list(args, ctx)
    if args.jobs < 1:
        raise UsageError(f"-j must be at least 1, got {args.jobs}")
    if args.output is not None and not args.output.is_dir():
        raise UsageError(f"--output {args.output}: not a directory")
    scenarios = load_all_scenarios(args.paths, args.select, args.accel)
    if args.worker_result:
        return _worker(scenarios, Path(args.worker_result), args)
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
    results = []
    for scenario in scenarios:
        result = _run_one(scenario, args)
        results.append(result)
        _show(result, args, ctx)
    return results


def _run_one(scenario: Scenario, args: argparse.Namespace) -> ScenarioResult:
    from lhvdbg.scenario.runner import run_scenario

    return run_scenario(
        scenario,
        commands=registry_commands(),
        allow_host=args.allow_host,
        output=args.output,
    )


def _worker(scenarios: list[Scenario], out: Path, args: argparse.Namespace) -> int:
    """Internal (``-j``): run the scenarios given, write their results as JSON to ``out``."""
    results = [_run_one(s, args).to_dict() for s in scenarios]
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
                    if args.allow_host:
                        argv += ["--allow-host"]
                    if args.output is not None:
                        argv += ["--output", str(args.output)]
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
        except BaseException:  # Ctrl-C, SIGTERM: no worker outlives us
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
    """The result line of one scenario (none with ``--json``): piped, never wrapped (one
    line per failure in a CI log); on a terminal, each failure wrapped under its own text
    (the terminal would wrap it at column 0)."""
    if args.json:
        return
    from lhvdbg.ui.console import is_terminal
    from lhvdbg.ui.scenarios import result_line

    terminal = is_terminal(ctx.stdout)
    line = result_line(
        result.status,
        result.label,
        result.elapsed,
        result.accel,
        result.file,
        result.failures,
        result.host_access if result.allow_host else None,
        wrap=terminal,
    )
    ctx.print(line, soft_wrap=not terminal)


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
