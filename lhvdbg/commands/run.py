"""``lhvdbg run``: boot a kernel, show its serial output, say how the run ended.

Outcomes: ``debug-exit`` (the guest wrote to isa-debug-exit; its value is shown, named
from the kernel's ``lhv_exit_code`` DWARF enum when it has one), ``triple-fault`` (QEMU
paused on the reset a triple fault causes), ``reset-requested`` (paused on a reset the
guest asked for: 0xFE to port 0x64, port 0xCF9, port 0x92 — see
:mod:`lhvdbg.diagnose.reset`), ``shutdown`` (any other guest shutdown),
``qemu-exit`` (QEMU ended otherwise), ``timeout`` (counted from the kernel's entry),
``kernel-never-started`` (its entry not reached within ``--boot-timeout``),
``interrupted`` (Ctrl-C: the guest is stopped, the result so far printed, exit 130).
Every other outcome exits 0: a guest that faults or hangs is a result, not an error of
lhvdbg.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lhvdbg.commands._boot import DEFAULT_BOOT_TIMEOUT
from lhvdbg.commands._watch import RunInterrupted, RunWatch
from lhvdbg.commands.options import add_launch_arguments, launch_config_from_args
from lhvdbg.commands.registry import Context, command
from lhvdbg.signals import EXIT_INTERRUPTED

if TYPE_CHECKING:
    from lhvdbg.machine.session import Session, StopEvent

EXIT_ENUM = "lhv_exit_code"


def _configure(parser: argparse.ArgumentParser) -> None:
    add_launch_arguments(parser)
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="stop after S seconds from the kernel's entry (10)",
    )
    parser.add_argument(
        "--boot-timeout",
        type=float,
        default=DEFAULT_BOOT_TIMEOUT,
        metavar="S",
        help=f"give up if the kernel's entry is not reached in S s ({DEFAULT_BOOT_TIMEOUT:g})",
    )
    parser.add_argument("--quiet", action="store_true", help="do not stream the serial output")
    parser.add_argument(
        "--int-log", type=Path, metavar="FILE", help="copy QEMU's -d int log here (TCG)"
    )


def outcome_of(session: Session, event: StopEvent) -> dict[str, Any]:
    """The run's outcome as JSON-ready data."""
    from lhvdbg.state.elf import dwarf_enum

    result: dict[str, Any] = {
        "outcome": "stopped",
        "accel": session.accel,
        "qemu_version": session.qemu_version,
        "kernel": str(session.kernel) if session.kernel else None,
        "kernel_sha256": session.kernel_info.sha256 if session.kernel_info else None,
        "elapsed": round(event.elapsed, 3),
        "detail": event.detail,
    }
    if event.reason == "exited":
        value = event.guest_exit_value
        if value is not None and session.config.debug_exit:
            result["outcome"] = "debug-exit"
            result["exit_value"] = value
            info = session.kernel_info
            names = dwarf_enum(info.path, EXIT_ENUM) if info is not None else {}
            result["exit_name"] = names.get(value)
        else:
            result["outcome"] = "qemu-exit"
        result["qemu_status"] = event.exit_code
    elif event.reason == "shutdown":
        from lhvdbg.commands._diagnosis import reset_reading

        shutdown = [e for e in session.events() if e.name == "SHUTDOWN"]
        reason = str(shutdown[-1].data.get("reason", "")) if shutdown else ""
        result.update(_where(session, event.address))
        if reason in ("guest-reset", ""):  # QEMU says guest-reset for both; tell them apart
            reading = reset_reading(session, event)
            assert reading is not None
            result["outcome"] = reading.cause
            result["reset_how"] = reading.how
        else:
            result["outcome"] = "shutdown"
        result["shutdown_reason"] = reason or None
    elif event.reason == "timeout":
        result["outcome"] = "timeout"
        result.update(_where(session, event.address))
    return result


def ended_badly(result: dict[str, Any]) -> bool:
    """A triple fault, QEMU ending on its own, or an exit value not named OK/SUCCESS (a
    reset the guest asked for is its own doing)."""
    outcome = result["outcome"]
    if outcome == "debug-exit":
        name = str(result.get("exit_name") or "")
        return not name.upper().endswith(("OK", "SUCCESS"))
    return outcome in ("triple-fault", "qemu-exit", "shutdown")


def _where(session: Session, address: int | None) -> dict[str, Any]:
    if address is None:
        return {"address": None, "where": "?"}
    name = session.symbolize(address)
    where = f"{address:#x}" if name.startswith("0x") else f"{name} ({address:#x})"
    return {"address": f"{address:#x}", "where": where}


def summary_line(result: dict[str, Any], where: str) -> str:
    """One line: ``run: <where> (tcg): <outcome text> after 0.21 s``."""
    outcome = result["outcome"]
    if outcome == "debug-exit":
        name = f" {result['exit_name']}" if result.get("exit_name") else ""
        text = f"guest exited through isa-debug-exit with {result['exit_value']:#x}{name}"
    elif outcome == "triple-fault":
        text = f"triple fault: QEMU paused at {result.get('where') or '?'}"
    elif outcome == "reset-requested":
        how = result.get("reset_how") or "no triple fault"
        text = f"the guest asked for a reset ({how}): QEMU paused at {result.get('where') or '?'}"
    elif outcome == "shutdown":
        text = f"guest shut down ({result.get('shutdown_reason') or 'unknown reason'})"
    elif outcome == "timeout":
        text = f"still running after the timeout (at {result.get('where') or '?'})"
    elif outcome == "interrupted":
        text = f"interrupted (Ctrl-C) at {result.get('where') or '?'}"
    elif outcome == "kernel-never-started":
        text = f"the kernel never started: {result.get('detail')}"
    elif outcome == "qemu-exit":
        text = f"QEMU exited with status {result.get('qemu_status')}"
    else:
        text = str(result.get("detail"))
    return f"run: {where} ({result['accel']}): {text} after {result['elapsed']:.2f} s"


@command(
    "run",
    "boot a kernel, stream its serial output, report how it ended",
    configure=_configure,
    category="machine",
    where={"cli"},
)
def run(args: argparse.Namespace, ctx: Context) -> int:
    """Boot, stream, report."""
    from lhvdbg.commands._boot import run_to_entry
    from lhvdbg.machine.session import Session

    config = launch_config_from_args(args)
    stream = not args.quiet and not args.json
    # the status line only when no serial output streams to the same terminal
    watch = RunWatch(sys.stderr if not stream and ctx.stdout is sys.stdout else None)
    entered: bool | None = False
    with watch, Session(config) as session:

        def show_serial() -> None:
            text = session.serial_new()
            if text:
                ctx.stdout.write(text.replace("\r\n", "\n"))
                ctx.stdout.flush()

        def poll() -> None:
            if stream:
                show_serial()
            watch.poll()

        try:
            watch.phase = "booting (firmware and loader)"
            boot = run_to_entry(session, timeout=args.boot_timeout, poll=watch.poll)
            entered = boot.entered
            if boot.stop is not None:
                event = boot.stop
            else:
                watch.phase = "kernel entered: running"
                event = session.cont(timeout=args.timeout, poll=poll)
        except RunInterrupted:
            event = session.interrupt()
        if stream:
            show_serial()
        result = outcome_of(session, event)
        if not entered and event.reason == "timeout":
            result["outcome"] = "kernel-never-started"
        if watch.interrupted:
            result["outcome"] = "interrupted"
            result["interrupted"] = watch.note()
            result["elapsed"] = round(watch.interrupted_at[0], 3)
            result.update(_where(session, event.address))
        result["kernel_entered"] = entered
        if args.int_log is not None:
            log = session.int_log_path
            if log is not None and log.exists():
                shutil.copyfile(log, args.int_log)
                result["int_log"] = str(args.int_log)
        for note in session.notes:
            result.setdefault("notes", []).append(note)
        if session.accel == "kvm":
            from lhvdbg.commands._diagnosis import kvm_note

            kvm = kvm_note(session, ended_badly=ended_badly(result))
            if kvm:
                result.setdefault("notes", []).append(kvm)
        serial = session.serial_text()
    status = EXIT_INTERRUPTED if watch.interrupted else 0
    if args.json:
        result["serial"] = serial
        ctx.print_json(result)
        return status
    if stream and serial and not serial.endswith("\n"):
        ctx.stdout.write("\n")
    for note in result.get("notes", []):
        ctx.stdout.write(f"note: {note}\n")
    ctx.stdout.write(summary_line(result, config.describe()) + "\n")
    return status
