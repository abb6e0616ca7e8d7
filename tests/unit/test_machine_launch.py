"""Launch configuration without starting anything: which QEMU binary (``--qemu``,
``$LHVDBG_QEMU``, PATH), the ``-L`` folders of a QEMU unpacked from Debian packages, its
``-version``, and the private folders a killed lhvdbg left behind."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lhvdbg.commands.options import add_launch_arguments, launch_config_from_args
from lhvdbg.errors import QemuError, ToolMissingError
from lhvdbg.machine import launch
from lhvdbg.machine.launch import (
    LaunchConfig,
    build_qemu_argv,
    data_dir_args,
    find_qemu,
    parse_qemu_version,
    qemu_version,
)
from lhvdbg.machine.workdir import (
    OWNER_FILE,
    SessionPaths,
    owner_alive,
    owner_record,
    process_start_time,
    sweep_stale,
)

VERSION_TEXT = (
    "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-1~bpo12+1)\n"
    "Copyright (c) 2003-2025 Fabrice Bellard and the QEMU Project developers\n"
)


def fake_qemu(path: Path, text: str = VERSION_TEXT) -> Path:
    """An executable that prints ``text`` (what ``qemu -version`` prints)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\ncat <<'EOF'\n{text}EOF\n")
    path.chmod(0o755)
    return path


def unpacked(root: Path) -> Path:
    """``<root>/usr/bin/qemu-system-x86_64`` beside ``<root>/usr/share/qemu`` (the layout
    ``dpkg-deb -x`` of Debian's qemu-system-x86 and qemu-system-data gives)."""
    (root / "usr" / "share" / "qemu").mkdir(parents=True)
    return fake_qemu(root / "usr" / "bin" / "qemu-system-x86_64")


def parsed(*argv: str) -> LaunchConfig:
    parser = argparse.ArgumentParser()
    add_launch_arguments(parser)
    return launch_config_from_args(parser.parse_args(list(argv)))


def test_the_binary_comes_from_the_option_then_the_environment_then_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("LHVDBG_QEMU", raising=False)
    assert LaunchConfig().qemu_binary() == "qemu-system-x86_64"
    assert LaunchConfig(qemu_system="i386").qemu_binary() == "qemu-system-i386"
    monkeypatch.setenv("LHVDBG_QEMU", "/opt/q/usr/bin/qemu-system-x86_64")
    assert LaunchConfig().qemu_binary() == "/opt/q/usr/bin/qemu-system-x86_64"
    assert parsed().qemu_binary() == "/opt/q/usr/bin/qemu-system-x86_64"
    assert parsed("--qemu", str(tmp_path / "q")).qemu_binary() == str(tmp_path / "q")
    assert parsed("--qemu", "q", "--qemu-arg=-smp").extra_args == ("-smp",)


def test_find_qemu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LHVDBG_QEMU", raising=False)
    binary = fake_qemu(tmp_path / "bin" / "qemu-system-x86_64")
    assert find_qemu(LaunchConfig(qemu=str(binary))) == str(binary)
    with pytest.raises(ToolMissingError, match="QEMU binary not found or not executable: "):
        find_qemu(LaunchConfig(qemu=str(tmp_path / "nope" / "qemu")))
    binary.chmod(0o644)
    with pytest.raises(ToolMissingError, match="not executable"):
        find_qemu(LaunchConfig(qemu=str(binary)))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ToolMissingError, match=r"^qemu-system-x86_64 not found: install "):
        find_qemu(LaunchConfig())


def test_an_unpacked_qemu_gets_its_own_firmware_folder_and_seabios(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seabios = tmp_path / "seabios"
    seabios.mkdir()
    monkeypatch.setattr(launch, "SYSTEM_SEABIOS", seabios)
    binary = unpacked(tmp_path / "qemu10")
    share = tmp_path / "qemu10" / "usr" / "share" / "qemu"
    assert data_dir_args(str(binary)) == ["-L", str(share), "-L", str(seabios)]
    config = LaunchConfig(qemu=str(binary))
    paths = SessionPaths.inside(tmp_path / "s")
    argv = build_qemu_argv(config, paths, accel="tcg", kernel=None, binary=find_qemu(config))
    assert argv[:6] == [str(binary), "-L", str(share), "-L", str(seabios), "-S"]
    # without the system SeaBIOS only its own folder
    monkeypatch.setattr(launch, "SYSTEM_SEABIOS", tmp_path / "none")
    assert data_dir_args(str(binary)) == ["-L", str(share)]


def test_a_system_or_loose_qemu_gets_no_data_dirs(tmp_path: Path) -> None:
    assert data_dir_args("/usr/bin/qemu-system-x86_64") == []
    assert data_dir_args("qemu-system-x86_64") == []
    assert data_dir_args(str(fake_qemu(tmp_path / "bin" / "qemu-system-x86_64"))) == []
    # the bin/usr layout without share/qemu is not an unpacked package either
    (tmp_path / "bare" / "usr" / "bin").mkdir(parents=True)
    assert data_dir_args(str(tmp_path / "bare" / "usr" / "bin" / "qemu-system-x86_64")) == []


def test_the_version_is_read_with_dash_version(tmp_path: Path) -> None:
    assert parse_qemu_version(VERSION_TEXT) == "10.0.2"
    assert parse_qemu_version("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)") == (
        "7.2.22"
    )
    assert parse_qemu_version("QEMU emulator version 8.2") == "8.2"
    assert parse_qemu_version("qemu-img version 7.2.0") is None
    assert qemu_version(str(unpacked(tmp_path / "q"))) == "10.0.2"
    silent = fake_qemu(tmp_path / "silent", "nothing here\n")
    with pytest.raises(QemuError, match="-version gave no version: nothing here"):
        qemu_version(str(silent))


def test_the_system_qemu_names_its_version() -> None:
    path = find_qemu(LaunchConfig())
    out = subprocess.run([path, "-version"], capture_output=True, text=True, check=True)
    version = qemu_version(path)
    assert version == parse_qemu_version(out.stdout)
    assert version.count(".") >= 1 and version.split(".")[0].isdigit()


# --- private folders and their owners -------------------------------------------------


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_owner_file_names_this_process() -> None:
    start = process_start_time(os.getpid())
    assert start is not None and start > 0
    assert owner_record(os.getpid()) == f"{os.getpid()} {start}\n"
    assert owner_alive(owner_record(os.getpid()))
    assert not owner_alive(f"{dead_pid()} 12345")
    assert not owner_alive(f"{os.getpid()} {start + 1}")  # the pid was reused
    assert owner_alive("garbage")  # unreadable: not provably stale


def test_a_new_folder_records_its_owner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    paths = SessionPaths.create()
    assert paths.directory.parent == tmp_path
    assert (paths.directory / OWNER_FILE).read_text() == owner_record(os.getpid())
    assert oct(paths.directory.stat().st_mode & 0o777) == "0o700"


def test_stale_folders_are_swept_and_nothing_else(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def folder(name: str, owner: str | None) -> Path:
        d = tmp_path / name
        d.mkdir()
        (d / "serial.log").write_text("x")
        if owner is not None:
            (d / OWNER_FILE).write_text(owner)
        return d

    dead = folder("lhvdbg-dead1234", f"{dead_pid()} 999\n")
    reused = folder("lhvdbg-reused12", f"{os.getpid()} 1\n")  # same pid, other start
    mine = folder("lhvdbg-mine1234", owner_record(os.getpid()))
    old = folder("lhvdbg-old12345", None)  # from a version without owner files
    other = folder("other-dead1234", f"{dead_pid()} 999\n")
    target = folder("target", None)
    (tmp_path / "lhvdbg-link").symlink_to(target)
    assert sorted(sweep_stale(tmp_path)) == sorted([dead, reused])
    assert not dead.exists() and not reused.exists()
    assert mine.exists() and old.exists() and other.exists() and target.exists()
    # a new session sweeps by itself
    again = folder("lhvdbg-again123", f"{dead_pid()} 999\n")
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    SessionPaths.create()
    assert not again.exists()
