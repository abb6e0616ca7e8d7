"""Scenarios on the real firmware in real QEMU: every shipped scenario passes, failing
scenarios are reported with the failing assertion (expected and actual), ``-j`` workers
and JUnit output, and the Python API for what a file cannot say."""

from __future__ import annotations

import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lhvdbg.commands.scenario import registry_commands
from lhvdbg.machine.session import kvm_usable
from lhvdbg.scenario.loader import collect_files, load_scenario
from lhvdbg.scenario.runner import ScenarioRun, run_scenario

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "scenarios"
FIXTURES = ROOT / "tests" / "fixtures" / "scenarios"
LHVDBG = [sys.executable, "-m", "lhvdbg", "--no-color"]

pytestmark = pytest.mark.integration


def _lhvdbg(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LHVDBG, *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout, check=False
    )


def test_shipped_scenarios_all_pass(firmware_built: Path, tmp_path: Path) -> None:
    """The whole scenarios/ directory, two at a time, with JUnit XML for CI."""
    junit = tmp_path / "scenarios.xml"
    files = collect_files([SHIPPED])
    assert len(files) >= 13
    done = _lhvdbg("scenario", "run", "-j", "2", "--junit", str(junit), str(SHIPPED))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for path in files:
        assert any(line.startswith(f"PASS  {path.stem}  ") for line in lines), done.stdout
    assert f"{len(files)} scenarios: {len(files)} passed, 0 failed, 0 errors in" in lines[-1]
    root = ET.parse(junit).getroot()
    assert root.get("tests") == str(len(files)) and root.get("failures") == "0"
    assert root.get("errors") == "0"


def test_failing_scenarios_are_reported(firmware_built: Path, tmp_path: Path) -> None:
    junit = tmp_path / "failing.xml"
    names = [
        "failing-assertion.toml",
        "failing-serial.toml",
        "failing-step-expect.toml",
        "error-unknown-command.toml",
    ]
    done = _lhvdbg(
        "scenario", "run", "-j", "2", "--junit", str(junit), *(str(FIXTURES / n) for n in names)
    )
    assert done.returncode == 1
    out = done.stdout
    failing = FIXTURES / "failing-assertion.toml"
    # every failing assertion of the final block, each with expected and actual
    assert f"pic.master.irq_base: expected equals 0x20, actual 0x8 ({failing}:10)" in out
    assert "idt[0x300].present: expected equals true, actual no value (idt: no field [0x300]" in out
    assert "outcome: expected" not in out  # that assertion passed
    assert (
        "step 1 (wait_serial 'hello from nowhere'): serial text 'hello from nowhere' not seen: "
        "the guest stopped first (exited: QEMU exited with status 33" in out
    )
    step = FIXTURES / "failing-step-expect.toml"
    assert "step 2: ip: expected equals 0x1, actual 0x" in out and f"({step}:17)" in out
    assert "ERROR error-unknown-command" in out
    assert "step 3 (run 'frobnicate 1 2'): unknown command: frobnicate" in out
    assert out.splitlines()[-1].startswith("4 scenarios: 0 passed, 3 failed, 1 errors in")
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    failure = cases["failing-assertion"].find("failure")
    assert failure is not None and "expected equals 0x20, actual 0x8" in (failure.text or "")
    assert cases["error-unknown-command"].find("error") is not None


def test_run_scenario_in_process_gives_structured_results(firmware_built: Path) -> None:
    commands = registry_commands()
    result = run_scenario(load_scenario(FIXTURES / "failing-assertion.toml"), commands=commands)
    assert result.status == "fail" and result.accel == "tcg"
    assert result.step is None  # the final assertions failed, not a step
    assert result.where == f"{FIXTURES / 'failing-assertion.toml'}:10"
    assert len(result.failures) == 2
    assert "LHV firmware amd64 variant=pic-unremapped" in result.serial
    ok = run_scenario(load_scenario(SHIPPED / "i386-1-pic-unremapped.toml"), commands=commands)
    assert ok.passed, ok.failures


def test_python_api_for_what_a_file_cannot_say(firmware_built: Path) -> None:
    """Watch the firmware's tick counter grow one timer interrupt at a time (a loop with a
    value carried between steps), then check the timer vector never changed."""
    with ScenarioRun.launch(arch="amd64", variant="good", commands=registry_commands()) as s:
        assert s.wait_serial("sti", timeout=10)
        address = s.session.target.symbols()["pit_ticks"]
        seen = []
        for _ in range(4):
            event = s.ticks(1, timeout=5)
            assert event.reason == "vector" and event.vector == 0x20
            out = s.call(f"x/1gx {address:#x} --json").data  # the result as data
            assert isinstance(out, dict)
            seen.append(out["values"][0])
        assert seen == sorted(seen) and len(set(seen)) == 4, seen
        assert s.expect("pic.master.irq_base", equals=0x20).passed
        assert s.expect("stop.vector", one_of=[0x20, 0x22]).passed
        outcome = s.expect("tr.selector", equals=0x99, message="on purpose")
        assert not outcome.passed
        assert outcome.explain() == "tr.selector: expected equals 0x99, actual 0x20 — on purpose"
        assert not s.passed  # the run remembers the failed assertion


@pytest.mark.kvm
@pytest.mark.skipif(not kvm_usable(), reason="/dev/kvm cannot be opened read-write")
def test_a_scenario_under_kvm(firmware_built: Path) -> None:
    """--accel overrides the file: the fix's ticks counted with hardware breakpoints."""
    done = _lhvdbg(
        "scenario", "run", "--accel", "kvm", str(SHIPPED / "amd64-3-fixed-timer-ticks.toml")
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("PASS  amd64-3-fixed-timer-ticks  ") and " kvm" in done.stdout


CHARDEV_CHECK = (
    '\n[[step]]\nrun = "monitor --json info chardev"\nsave_as = "chardevs"\n'
    '[[step.expect]]\npath = "results.chardevs.output"\ncontains = "s0"'
)


def _host_cases(tmp: Path) -> dict[str, tuple[str, Path | None]]:
    """Scenario step tables that each touch the host one way, and the file that proves it
    happened (a marker, a capture outside the folder; None: the scenario's own assertion
    proves it — QEMU removes a listening socket's file when it exits)."""
    marker = tmp / "marker"
    script = tmp / "make-marker.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\nexec cat >/dev/null\n")
    script.chmod(0o755)
    sourced = tmp / "cmds.gdb"
    sourced.write_text(f"shell touch {marker}\n")
    sock = tmp / "s.sock"
    return {
        "gdb-shell": (f'run = "gdb shell touch {marker}"', marker),
        "gdb-bang": (f'run = "gdb !touch {marker}"', marker),
        "gdb-pipe": (f'run = "gdb pipe print 1 | tee {marker}"', marker),
        "gdb-bar": (f'run = "gdb | print 1 | tee {marker}"', marker),
        "gdb-python": (f'run = """gdb python "open(\'{marker}\', \'w\').close()" """', marker),
        "gdb-source": (f'run = "gdb source {sourced}"', marker),
        "monitor-migrate-exec": (f'run = "monitor migrate exec:{script}"', marker),
        "monitor-chardev-add": (
            f'run = "monitor chardev-add socket,id=s0,path={sock},server=on,wait=off"'
            + CHARDEV_CHECK,
            None,
        ),
        "capture-outside": ('capture = "../outside.json"', tmp / "outside.json"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "gdb-shell",
        "gdb-bang",
        "gdb-pipe",
        "gdb-bar",
        "gdb-python",
        "gdb-source",
        "monitor-migrate-exec",
        "monitor-chardev-add",
        "capture-outside",
    ],
)
def test_each_host_path_is_refused_and_allow_host_lets_it_through(
    firmware_built: Path, tmp_path: Path, case: str
) -> None:
    step, evidence = _host_cases(tmp_path)[case]
    path = tmp_path / "downloaded" / f"{case}.toml"
    path.parent.mkdir()
    path.write_text(f'arch = "amd64"\nvariant = "good"\ntimeout = 30\n[[step]]\n{step}\n')
    scenario = load_scenario(path)
    refused = run_scenario(scenario, commands=registry_commands())
    assert refused.status == "error" and refused.accel is None  # nothing was started
    assert refused.failures[0].endswith("refused (--allow-host allows it for a trusted file)")
    assert evidence is None or not evidence.exists()
    allowed = run_scenario(scenario, commands=registry_commands(), allow_host=True)
    assert allowed.allow_host and len(allowed.host_access) == 1, allowed.host_access
    assert allowed.passed, (allowed.failures, allowed.log)
    if evidence is not None:
        for _ in range(50):  # QEMU starts a migration's exec: command in the background
            if evidence.exists():
                break
            time.sleep(0.1)
        assert evidence.exists()


def test_network_qemu_arguments_need_allow_host_and_the_result_says_so(
    firmware_built: Path, tmp_path: Path
) -> None:
    """An extra QEMU -chardev with a (Unix) listening socket: refused, then allowed and
    reported on the result line; the chardev exists in the allowed run."""
    sock = tmp_path / "extra.sock"
    path = tmp_path / "extra-args.toml"
    path.write_text(
        'arch = "amd64"\nvariant = "good"\ntimeout = 30\n[options]\n'
        f'extra_args = ["-chardev", "socket,id=extra0,path={sock},server=on,wait=off"]\n'
        '[[step]]\nrun = "monitor --json info chardev"\nsave_as = "chardevs"\n'
        '[[step.expect]]\npath = "results.chardevs.output"\ncontains = "extra0"\n'
    )
    refused = _lhvdbg("scenario", "run", str(path))
    assert refused.returncode == 1
    assert "options.extra_args: QEMU argument '-chardev' is not one a scenario may add" in (
        refused.stdout
    )
    allowed = _lhvdbg("scenario", "run", "--allow-host", str(path))
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    first, second = allowed.stdout.splitlines()[:2]
    assert first.startswith("PASS  extra-args  ") and "host access allowed (1 use)" in first
    assert second.strip().startswith("allowed: ") and "-chardev" in second


def test_stepi_obeys_the_step_and_scenario_time_limits(
    firmware_built: Path, tmp_path: Path
) -> None:
    """stepi checks the clock between instructions: a 200000-instruction stepi under a
    2 s step limit fails with the time it took; under a 3 s scenario limit likewise, and
    the next step is not run. A run line may not step (it would escape the limits)."""
    step_limit = tmp_path / "step-limit.toml"
    step_limit.write_text(
        'arch = "amd64"\nvariant = "good"\ntimeout = 60\n[[step]]\nstepi = 200000\ntimeout = 2\n'
    )
    result = run_scenario(load_scenario(step_limit), commands=registry_commands())
    assert result.status == "fail" and result.step == 1, result.failures
    (failure,) = result.failures
    assert failure.startswith("step 1 (stepi 200000): stepi 200000: ")
    assert failure.endswith(" s, over the 2 s limit")
    whole = tmp_path / "scenario-limit.toml"
    whole.write_text(
        'arch = "amd64"\nvariant = "good"\ntimeout = 3\n[[step]]\nstepi = 200000\n'
        "[[step]]\ncontinue = true\n"
    )
    result = run_scenario(load_scenario(whole), commands=registry_commands())
    assert result.status == "fail" and result.step == 1, result.failures
    assert "instructions took" in result.failures[0] and "over the" in result.failures[0]
    escape = tmp_path / "run-stepi.toml"
    escape.write_text('arch = "amd64"\nvariant = "good"\n[[step]]\nrun = "stepi 100000"\n')
    result = run_scenario(load_scenario(escape), commands=registry_commands(), allow_host=True)
    assert result.status == "error"
    assert (
        "'stepi' lets the guest run: use a stepi step, which obeys the time limits"
        in (result.failures[0])
    )


def test_a_wait_cut_short_by_the_scenario_limit_says_so(firmware_built: Path) -> None:
    """The scenario's 3 s limit ends a wait_serial whose own timeout is 10 s: the failure
    names the scenario's limit, not the step's 10 s it never had."""
    scenario = load_scenario(FIXTURES / "failing-serial-limit.toml")
    result = run_scenario(scenario, commands=registry_commands())
    assert result.status == "fail" and result.step == 1, result.failures
    (failure,) = result.failures
    assert failure.startswith(
        "step 1 (wait_serial 'hello from nowhere'): serial text 'hello from nowhere' not "
        "seen before the scenario's time limit; last line "
    ), failure
