"""A scenario file may not touch the host unless --allow-host: the policy's verdict on
each kind of line, and the runner refusing before anything is launched."""

from __future__ import annotations

from pathlib import Path

import pytest

from lhvdbg.errors import ScenarioError
from lhvdbg.scenario.loader import parse_scenario
from lhvdbg.scenario.model import Origin
from lhvdbg.scenario.policy import (
    Writable,
    host_uses,
    qemu_args_host_use,
    run_line_host_use,
    run_line_runs_guest,
    writable_for,
)
from lhvdbg.scenario.runner import run_scenario


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("gdb shell id", "gdb 'shell' is not an inspection"),
        ("gdb !id", "gdb '!' runs a host command"),
        ("gdb | print 1 | cat", "gdb '|' runs a host command"),
        ("gdb pipe print 1 | cat", "gdb 'pipe' is not an inspection"),
        ("gdb python import os", "gdb 'python' is not an inspection"),
        ("gdb pi 1", "gdb 'pi' is not an inspection"),
        ("gdb source /tmp/x.gdb", "gdb 'source' is not an inspection"),
        ('gdb eval "shell id"', "gdb 'eval' is not an inspection"),
        ("gdb with print pretty -- shell id", "gdb 'with' is not an inspection"),
        ("gdb frame apply all shell id", "gdb 'frame apply' runs other commands"),
        ('gdb print $_shell("id")', "gdb's $_shell function runs a host command"),
        ("gdb set logging file /tmp/x", "gdb 'set logging' changes gdb itself"),
        ("gdb target remote | nc x 1", "gdb 'target' is not an inspection"),
        ("gdb dump memory /tmp/m 0 16", "gdb 'dump' is not an inspection"),
        ("gdb monitor migrate exec:id", "monitor 'migrate' may execute"),
        ("monitor migrate exec:touch /tmp/x", "monitor 'migrate' may execute"),
        ("monitor migrate file:/tmp/x", "monitor 'migrate' may execute"),
        ("monitor chardev-add socket,id=s,host=0.0.0.0,port=4444", "monitor 'chardev-add'"),
        ("monitor netdev_add user,id=n", "monitor 'netdev_add'"),
        ("monitor gdbserver tcp::1234", "monitor 'gdbserver'"),
        ("monitor pmemsave 0 4096 /tmp/m", "monitor 'pmemsave'"),
        ("monitor dump-guest-memory /tmp/core", "monitor 'dump-guest-memory'"),
        ("save /tmp/x.json", "'save' writes a file"),
        ("gdb/x shell id", "gdb '/x' is not an inspection"),  # split as the shell splits it
        ("monitor/x migrate exec:id", "monitor '/x' may execute"),
    ],
)
def test_host_commands_are_named(line: str, reason: str) -> None:
    found = run_line_host_use(line)
    assert found is not None and found.startswith(reason), found


@pytest.mark.parametrize(
    "line",
    [
        "gdb info registers",
        "gdb x/4gx $rsp",
        "gdb p/x $rip",
        "gdb set var $rax = 1",
        "gdb bt",
        "gdb monitor info pic",
        "monitor info registers",
        "monitor xp /2gx 0x1000",
        "monitor system_reset",
        "diagnose --json",
        "x/8xb $rsp",
        "tss",
    ],
)
def test_inspection_is_free(line: str) -> None:
    assert run_line_host_use(line) is None


@pytest.mark.parametrize(
    ("line", "instead"),
    [
        ("continue", "use a continue step"),
        ("c", "use a continue step"),
        ("stepi 100000", "use a stepi step"),
        ("si 5", "use a stepi step"),
        ("until-df", "use a until_df step"),
        ("serial --follow", "use a wait_serial step"),
        ("gdb continue", "use a continue or stepi step"),
        ("gdb si", "use a continue or stepi step"),
        ("monitor cont", "use a continue step"),
    ],
)
def test_commands_that_run_the_guest_are_steps_not_run_lines(line: str, instead: str) -> None:
    found = run_line_runs_guest(line)
    assert found is not None and instead in found, found


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["-netdev", "user,id=n0"], "QEMU argument '-netdev' is not one a scenario may add"),
        (["-chardev", "socket,id=c,path=/tmp/s,server=on"], "QEMU argument '-chardev'"),
        (["-serial", "tcp::4444,server"], "QEMU argument '-serial'"),
        (["-gdb", "tcp::1234"], "QEMU argument '-gdb'"),
        (["-vnc", ":1"], "QEMU argument '-vnc'"),
        (["-D", "/tmp/log"], "QEMU argument '-D'"),
        (["-incoming", "tcp::5555"], "QEMU argument '-incoming'"),
        (["-device", "virtio-net-pci"], "QEMU device 'virtio-net-pci'"),
        (["-machine", "q35,memory-backend=m,file=/tmp/x"], "QEMU argument -machine"),
        (["-smp"], "QEMU argument '-smp' lacks its value"),
    ],
)
def test_network_facing_qemu_arguments_are_named(args: list[str], reason: str) -> None:
    found = qemu_args_host_use(args)
    assert found is not None and found.startswith(reason), found


def test_harmless_qemu_arguments_pass() -> None:
    args = ["-smp", "2", "-cpu", "max", "-no-reboot", "-d", "int", "--rtc", "base=utc"]
    assert qemu_args_host_use([*args, "-device", "isa-debug-exit,iobase=0xf4"]) is None


def test_writes_stay_in_the_scenario_folder_or_the_output_folder(tmp_path: Path) -> None:
    here = tmp_path / "scenarios"
    out = tmp_path / "out"
    here.mkdir()
    out.mkdir()
    origin = Origin(str(here / "s.toml"), 7)
    alone = Writable(here)
    assert alone.check("x.json", origin) == here / "x.json"
    assert alone.check("sub/x.json", origin) == here / "sub" / "x.json"
    with pytest.raises(ScenarioError, match=r"s\.toml:7: capture '\.\./x\.json' writes outside"):
        alone.check("../x.json", origin)
    with pytest.raises(ScenarioError, match="--allow-host lifts this"):
        alone.check(str(tmp_path / "elsewhere.json"), origin)
    (here / "link").symlink_to(tmp_path)  # a link out of the folder is outside too
    with pytest.raises(ScenarioError, match="writes outside"):
        alone.check("link/x.json", origin)
    both = Writable(here, out)
    assert both.check("x.json", origin) == out / "x.json"  # relative names go to --output
    assert both.check(str(here / "y.json"), origin) == here / "y.json"


SCENARIO = """
arch = "amd64"
variant = "good"
[options]
extra_args = ["-chardev", "socket,id=c0,host=0.0.0.0,port=4444,server=on"]
[[step]]
run = "gdb shell touch /tmp/owned"
[[step]]
run = "monitor migrate exec:touch /tmp/owned"
[[step]]
capture = "../../owned.json"
[[step]]
run = "diagnose --json"
"""


def test_the_runner_refuses_before_launching_anything(tmp_path: Path) -> None:
    path = tmp_path / "a" / "hostile.toml"
    path.parent.mkdir()
    path.write_text(SCENARIO)
    scenario = parse_scenario(SCENARIO, name=str(path), path=path)
    uses = host_uses(scenario, writable_for(scenario, None))
    assert [u.origin.line for u in uses] == [0, 7, 9, 11]

    def no_launch(config: object) -> object:
        raise AssertionError("a refused scenario must not start QEMU")

    result = run_scenario(scenario, session_factory=no_launch)  # type: ignore[arg-type]
    assert result.status == "error" and not result.allow_host
    assert len(result.failures) == 4
    assert result.failures[1] == (
        f"{path}:7: gdb 'shell' is not an inspection or breakpoint command (it may run host "
        "commands): refused (--allow-host allows it for a trusted file)"
    )
    assert "options.extra_args: QEMU argument '-chardev'" in result.failures[0]
    assert "capture writes outside its folders" in result.failures[3]
    assert result.where == str(path)


def test_qemu_system_is_a_name_never_a_path() -> None:
    text = 'arch = "amd64"\nvariant = "good"\n[options]\nqemu_system = "../../tmp/evil"\n'
    text += "[[step]]\ncontinue = true\n"
    with pytest.raises(ScenarioError, match=r"options\.qemu_system: unknown QEMU"):
        parse_scenario(text, name="q.toml")
