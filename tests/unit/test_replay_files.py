"""The files of a recording and the configurations that record and replay it (no QEMU)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lhvdbg.errors import UsageError
from lhvdbg.machine.launch import LaunchConfig
from lhvdbg.machine.replay import Recording, record_config, replay_config


def test_recording_files_and_icount_arguments(tmp_path: Path) -> None:
    rec = Recording(tmp_path / "run.rr")
    assert rec.image.name == "run.rr.qcow2" and rec.meta.name == "run.rr.json"
    assert rec.icount_args("replay") == (
        "-icount",
        f"shift=auto,rr=replay,rrfile={tmp_path / 'run.rr'},rrsnapshot=init",
        "-drive",
        f"file={tmp_path / 'run.rr.qcow2'},if=none,id=rrdisk",
    )


def test_replay_needs_all_three_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"not a recording: .*run\.rr is missing"):
        replay_config(tmp_path / "run.rr")


def test_a_broken_description_is_one_line(tmp_path: Path) -> None:
    rec = Recording(tmp_path / "run.rr")
    for path in (rec.log, rec.image):
        path.write_bytes(b"x")
    rec.meta.write_text("{}")
    with pytest.raises(UsageError, match="not a recording's description"):
        replay_config(rec.log)


@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img (qemu-utils) missing")
def test_record_then_replay_config_round_trip(tmp_path: Path) -> None:
    kernel = tmp_path / "k.elf"
    kernel.write_bytes(b"\x7fELF")
    config = LaunchConfig(kernel=kernel, append="hz=250", memory_mb=64, qemu="/x/qemu")
    recorded = record_config(config, tmp_path / "run.rr")
    assert recorded.extra_args[:2] == (
        "-icount",
        f"shift=auto,rr=record,rrfile={tmp_path / 'run.rr'},rrsnapshot=init",
    )
    assert (tmp_path / "run.rr.qcow2").read_bytes()[:4] == b"QFI\xfb"
    meta = json.loads((tmp_path / "run.rr.json").read_text())
    assert meta["kernel"] == str(kernel.resolve()) and meta["append"] == "hz=250"
    (tmp_path / "run.rr").write_bytes(b"log")
    replayed = replay_config(tmp_path / "run.rr")
    assert (replayed.kernel, replayed.append, replayed.memory_mb) == (
        kernel.resolve(),
        "hz=250",
        64,
    )
    assert replayed.qemu == "/x/qemu"
    assert "rr=replay" in replayed.extra_args[1]
    assert replay_config(tmp_path / "run.rr", qemu="/y/qemu").qemu == "/y/qemu"


def test_kvm_cannot_record(tmp_path: Path) -> None:
    config = LaunchConfig(kernel=tmp_path / "k.elf", accel="kvm")
    with pytest.raises(UsageError, match="needs TCG"):
        record_config(config, tmp_path / "run.rr")
