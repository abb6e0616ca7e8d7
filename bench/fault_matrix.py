"""The fault matrix: every case of ``firmware/fault-cases.toml`` through ``break-on-df``.

Each case boots the ``good`` firmware of its arch with the case's command line (the fault
is injected at run time, see ``docs/fault-matrix.md``) twice, side by side in one worker:

* ground truth: plain QEMU (TCG, ``-d int,cpu_reset``), whose log is read by the small
  reader below — every ``v=`` delivery, every ``check_exception`` raise that was folded
  into the next one, ``Triple fault``. Nothing of lhvdbg is imported for this;
* under test: ``lhvdbg break-on-df --json --variant good --append ...``.

Per case, four parts are judged:

* outcome — the report's ``outcome`` is the case's;
* chain — the report's chain rows (``vector``, ``delivered``, ``error_code``) are the
  log's rows from the first abnormal event to the stop (the error code is compared where
  the log shows one that was pushed; a folded raise has none in the log);
* cause — the first cause's ``id`` and ``check`` are the case's;
* fix — the first cause's ``fix_fields`` name the case's ``fix_field``.

Usage::

    .venv/bin/python bench/fault_matrix.py [-j N] [--case NAME ...] [--qemu PATH] [--json]
        [--json-out FILE]

``--json`` prints one object: ``{"qemu": ..., "cases": N, "right": N, "by_part":
{"outcome": N, "chain": N, "cause": N, "fix": N}, "failures": [...]}``. Exit status 0
whatever the score (this is a measurement); 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "firmware" / "fault-cases.toml"
PARTS = ("outcome", "chain", "cause", "fix")
NO_RAISE = 0xFFFFFFFF
# Exceptions that push an error code (Intel SDM Vol. 3A Table 6-1).
ERROR_CODE_VECTORS = frozenset({8, 10, 11, 12, 13, 14, 17, 21, 29, 30})
QEMU_TIMEOUT = 20.0
LHVDBG_TIMEOUT = 60.0


# ---- the cases ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One ``[[case]]`` of firmware/fault-cases.toml."""

    name: str
    arch: str
    append: str
    outcome: str
    check: str
    cause: str
    fix_field: str
    note: str
    source: str | None = None


def load_cases(path: Path = CASES) -> list[Case]:
    """Every case of the table, in file order."""
    data = tomllib.loads(path.read_text())
    return [Case(**row) for row in data["case"]]


# ---- ground truth: QEMU's own log --------------------------------------------------------

_DELIVERY = re.compile(
    r"^\s*\d+: v=(?P<v>[0-9a-f]+) e=(?P<e>[0-9a-f]+) i=(?P<i>\d) cpl=(?P<cpl>\d) "
    r"IP=(?P<cs>[0-9a-f]+):(?P<ip>[0-9a-f]+)"
)
_RAISE = re.compile(r"^check_exception old: 0x(?P<old>[0-9a-f]+) new 0x(?P<new>[0-9a-f]+)")
_HARDWARE = re.compile(r"^Servicing hardware INT=0x(?P<v>[0-9a-f]+)")


@dataclass
class Row:
    """One raise or delivery, as the log has it."""

    vector: int
    delivered: bool
    source: str  # hardware, software, exception
    error_code: int | None = None  # pushed error code; None when none (or not in the log)
    error_code_known: bool = True  # False for a folded raise: the log gives no code
    raised_over: int | None = None  # check_exception's "old" (None: not a raise)
    ip: int | None = None
    cpl: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "vector": self.vector,
            "error_code": self.error_code if self.error_code_known else "unknown",
            "delivered": self.delivered,
            "source": self.source,
        }


@dataclass
class LogTruth:
    """What QEMU's log says happened, up to the first vector-8 delivery or triple fault."""

    rows: list[Row] = field(default_factory=list)
    triple_fault: bool = False
    stopped: bool = False  # a vector-8 delivery or a triple fault was seen

    @property
    def outcome(self) -> str:
        if self.triple_fault:
            return "triple-fault"
        if self.stopped:
            last = self.rows[-1]
            if last.source == "hardware":
                return "hardware-interrupt-on-vector-8"
            return "double-fault"
        return "no-fault"

    def chain(self, *, delivery_check: bool = True, after_delivery: bool = False) -> list[Row]:
        """The rows from the first abnormal event to the stop.

        Walks back from the stop over raises nested in the delivery of the previous one
        (``old`` != none) and folded raises, to the first raise (``old`` = none). The event
        whose delivery raised it (the delivery row right before, at the same IP) leads the
        chain when ``delivery_check`` (the case's check is about delivery, not a return or
        plain code); ``after_delivery`` takes it even at another IP (QEMU 7.2 raises a
        bad target offset at the handler's first fetch, after the frame was pushed).
        A hardware interrupt on vector 8 is a chain of one row.
        """
        if not self.stopped or not self.rows:
            return []
        rows = self.rows
        i = len(rows) - 1
        if rows[i].source == "hardware":
            return [rows[i]]
        while i > 0 and rows[i].raised_over not in (None, NO_RAISE):
            i -= 1
        first = rows[i]
        if delivery_check and i > 0 and first.raised_over == NO_RAISE:
            before = rows[i - 1]
            if before.source != "exception" and (after_delivery or before.ip == first.ip):
                i -= 1
        return rows[i:]


def read_log(text: str) -> LogTruth:
    """The rows of a ``-d int,cpu_reset`` log up to what ``break-on-df`` stops at: the
    first vector-8 delivery (and, when delivering that #DF raised again, up to the
    ``Triple fault``)."""
    truth = LogTruth()
    hardware: int | None = None
    pending: int | None = None  # vector of a raise not yet delivered
    pending_old: int | None = None
    for line in text.splitlines():
        if truth.stopped and _is_event(line) and not _double_fault_failed(line):
            return truth  # the #DF was delivered: break-on-df stops in its handler
        if m := _HARDWARE.match(line):
            hardware = int(m["v"], 16)
            continue
        if m := _RAISE.match(line):
            if pending is not None:  # raised, then another raise before any delivery
                truth.rows.append(_folded(pending, pending_old))
            pending, pending_old = int(m["new"], 16), int(m["old"], 16)
            hardware = None
            continue
        if line.startswith("Triple fault"):
            if pending is not None:
                truth.rows.append(_folded(pending, pending_old))
            truth.triple_fault = truth.stopped = True
            return truth
        m = _DELIVERY.match(line)
        if not m:
            continue
        vector, code, is_int = int(m["v"], 16), int(m["e"], 16), m["i"] == "1"
        ip, cpl = int(m["ip"], 16), int(m["cpl"])
        if pending is not None and pending != vector:  # folded into this one (a #DF)
            truth.rows.append(_folded(pending, pending_old))
        if hardware == vector and pending is None:
            row = Row(vector, True, "hardware", None, ip=ip, cpl=cpl)
        elif is_int:
            row = Row(vector, True, "software", None, ip=ip, cpl=cpl)
        else:
            pushed = code if vector in ERROR_CODE_VECTORS else None
            row = Row(vector, True, "exception", pushed, raised_over=pending_old, ip=ip, cpl=cpl)
        truth.rows.append(row)
        hardware = pending = pending_old = None
        if vector == 8:
            truth.stopped = True
            if row.source == "hardware":
                return truth
    return truth


def _is_event(line: str) -> bool:
    return bool(_DELIVERY.match(line) or _RAISE.match(line) or _HARDWARE.match(line)) or (
        line.startswith("Triple fault")
    )


def _double_fault_failed(line: str) -> bool:
    """A raise while delivering the #DF (``old: 0x8``), or the triple fault it causes."""
    m = _RAISE.match(line)
    return line.startswith("Triple fault") or bool(m and int(m["old"], 16) == 8)


def _folded(vector: int, old: int | None) -> Row:
    return Row(vector, False, "exception", None, error_code_known=False, raised_over=old)


DELIVERY_CHECKS_EXCLUDED = ("iret-", "hardware-on-exception-vector", "spurious-irq")


def truth_chain(case: Case, truth: LogTruth) -> list[Row]:
    """The ground-truth chain for a case (see LogTruth.chain)."""
    delivery = not case.check.startswith(DELIVERY_CHECKS_EXCLUDED)
    return truth.chain(delivery_check=delivery, after_delivery=case.check == "target-offset")


# ---- running -----------------------------------------------------------------------------


def firmware(arch: str) -> Path:
    return ROOT / "firmware" / "build" / arch / "lhv-good.elf"


def run_qemu_log(case: Case, qemu: str, workdir: Path) -> str:
    """Plain QEMU with the case's command line; the ``-d int,cpu_reset`` log text."""
    log = workdir / "int.log"
    from lhvdbg.machine.launch import data_dir_args  # -L for an unpacked QEMU (QEMU 10)

    argv = [
        qemu,
        *data_dir_args(qemu),
        "-kernel",
        str(firmware(case.arch)),
        "-append",
        case.append,
        "-display",
        "none",
        "-no-reboot",
        "-serial",
        f"file:{workdir / 'serial.txt'}",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
        "-d",
        "int,cpu_reset",
        "-D",
        str(log),
    ]
    # On a timeout subprocess.run kills QEMU; the log so far is what there is.
    with contextlib.suppress(subprocess.TimeoutExpired):
        subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=QEMU_TIMEOUT,
            check=False,
        )
    return log.read_text(errors="replace") if log.exists() else ""


def run_lhvdbg(case: Case, qemu: str | None, workdir: Path) -> dict[str, Any] | str:
    """``lhvdbg break-on-df --json`` on the case; the report, or the error text."""
    env = dict(os.environ)
    if qemu is not None:  # lhvdbg's own choice of binary (-L for an unpacked QEMU too)
        env["LHVDBG_QEMU"] = str(Path(qemu).resolve()) if os.sep in qemu else qemu
    argv = [
        sys.executable,
        "-m",
        "lhvdbg",
        "break-on-df",
        "--json",
        "--arch",
        case.arch,
        "--variant",
        "good",
        "--append",
        case.append,
    ]
    try:
        done = subprocess.run(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=LHVDBG_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"timed out after {LHVDBG_TIMEOUT:g} s"
    if done.returncode != 0:
        return (done.stderr.strip() or done.stdout.strip() or f"exit {done.returncode}")[-400:]
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError as e:
        return f"not JSON: {e}"
    return report if isinstance(report, dict) else "not a JSON object"


# ---- judging -----------------------------------------------------------------------------


def report_chain(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's chain rows that are raises or deliveries (a triple-fault row, if the
    report has one, is judged by the outcome)."""
    rows = report.get("chain") or []
    return [
        r
        for r in rows
        if isinstance(r, dict) and r.get("vector") is not None and r.get("source") != "triple-fault"
    ]


def chain_problem(truth: Sequence[Row], rows: Sequence[dict[str, Any]]) -> str | None:
    """None when the report's rows are the truth's rows, else what differs."""
    want = [t.to_dict() for t in truth]
    if len(rows) != len(truth):
        return f"{len(rows)} rows, the log has {len(truth)}: want {want}"
    for n, (t, r) in enumerate(zip(truth, rows, strict=True)):
        if "delivered" not in r:
            return f"row {n}: no 'delivered' field"
        if r.get("vector") != t.vector or r.get("delivered") != t.delivered:
            got = f"vector {r.get('vector')} delivered {r.get('delivered')}"
            return f"row {n}: got {got}, want {t.to_dict()}"
        if t.error_code_known and r.get("error_code") != t.error_code:
            return f"row {n}: error code {r.get('error_code')}, the log has {t.error_code}"
    return None


def first_cause(report: dict[str, Any]) -> dict[str, Any]:
    causes = report.get("diagnosis") or []
    return causes[0] if causes and isinstance(causes[0], dict) else {}


@dataclass
class Result:
    """One case judged."""

    name: str
    arch: str
    parts: dict[str, bool]
    problems: dict[str, str]
    truth_outcome: str
    error: str | None = None

    @property
    def right(self) -> bool:
        return all(self.parts.values())


def judge(case: Case, log_text: str, report: dict[str, Any] | str) -> Result:
    """The four parts of one case, from the log and the report."""
    truth = read_log(log_text)
    problems: dict[str, str] = {}
    if truth.outcome != case.outcome:
        problems["ground-truth"] = f"the log shows {truth.outcome}, the case says {case.outcome}"
    if isinstance(report, str):
        problems["lhvdbg"] = report
        return Result(
            case.name, case.arch, dict.fromkeys(PARTS, False), problems, truth.outcome, report
        )
    parts = {}
    got = report.get("outcome")
    parts["outcome"] = got == case.outcome
    if not parts["outcome"]:
        problems["outcome"] = f"{got}, want {case.outcome}"
    problem = chain_problem(truth_chain(case, truth), report_chain(report))
    parts["chain"] = problem is None
    if problem:
        problems["chain"] = problem
    cause = first_cause(report)
    parts["cause"] = cause.get("id") == case.cause and cause.get("check") == case.check
    if not parts["cause"]:
        problems["cause"] = (
            f"id {cause.get('id')} check {cause.get('check')}, want {case.cause} {case.check}"
        )
    fix_fields = [str(f).lower() for f in cause.get("fix_fields") or []]
    parts["fix"] = case.fix_field.lower() in fix_fields
    if not parts["fix"]:
        problems["fix"] = f"fix_fields {cause.get('fix_fields')}, want {case.fix_field}"
    return Result(case.name, case.arch, parts, problems, truth.outcome)


def run_case(case: Case, qemu: str) -> Result:
    with tempfile.TemporaryDirectory(prefix="fault-matrix-") as tmp:
        work = Path(tmp)
        (work / "qemu").mkdir()
        (work / "lhvdbg").mkdir()
        log = run_qemu_log(case, qemu, work / "qemu")
        report = run_lhvdbg(case, None if qemu == "qemu-system-x86_64" else qemu, work / "lhvdbg")
    return judge(case, log, report)


def qemu_version(qemu: str) -> str:
    try:
        out = subprocess.run(
            [qemu, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    m = re.search(r"version (\d+\.\d+\.\d+)", out)
    return m.group(1) if m else "unknown"


def summary(results: Iterable[Result], qemu: str) -> dict[str, Any]:
    results = list(results)
    return {
        "qemu": qemu_version(qemu),
        "cases": len(results),
        "right": sum(r.right for r in results),
        "by_part": {p: sum(r.parts[p] for r in results) for p in PARTS},
        "failures": [
            {
                "case": r.name,
                "arch": r.arch,
                "wrong": [p for p in PARTS if not r.parts[p]],
                "problems": r.problems,
            }
            for r in results
            if not r.right or "ground-truth" in r.problems
        ],
    }


def print_table(results: Sequence[Result], total: dict[str, Any]) -> None:
    width = max(len(r.name) for r in results)
    print(f"{'case':<{width}}  outcome chain cause fix")
    for r in results:
        marks = "  ".join(f"{'ok' if r.parts[p] else '--':>5}" for p in PARTS)
        print(f"{r.name:<{width}}  {marks}")
        for part, text in r.problems.items():
            print(f"{'':<{width}}    {part}: {text}")
    parts = ", ".join(f"{p} {n}/{total['cases']}" for p, n in total["by_part"].items())
    print(f"QEMU {total['qemu']}: {total['right']}/{total['cases']} cases right ({parts})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-j", "--jobs", type=int, default=2, help="cases run at once (default 2)")
    parser.add_argument(
        "--case", action="append", default=[], metavar="NAME", help="only this case"
    )
    parser.add_argument(
        "--qemu", default="qemu-system-x86_64", metavar="PATH", help="the QEMU binary"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object")
    parser.add_argument(
        "--json-out", type=Path, metavar="FILE", help="also write the JSON object to FILE"
    )
    args = parser.parse_args(argv)
    cases = load_cases()
    if args.case:
        known = {c.name for c in cases}
        unknown = [n for n in args.case if n not in known]
        if unknown:
            parser.error(f"unknown case {', '.join(unknown)}")
        cases = [c for c in cases if c.name in args.case]
    if args.jobs < 1:
        parser.error("-j needs at least 1")
    for arch in {c.arch for c in cases}:
        if not firmware(arch).is_file():
            parser.error(f"{firmware(arch)} is not built: run make -C firmware")
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(lambda c: run_case(c, args.qemu), cases))
    total = summary(results, args.qemu)
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(total, indent=2) + "\n")
    if args.json:
        print(json.dumps(total, indent=2))
    else:
        print_table(results, total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
