"""The recorded snapshots in tests/fixtures/snapshots by name, and their system tables."""

from __future__ import annotations

from pathlib import Path

from lhvdbg.state.references import REFERENCE_NAMES, load_reference
from lhvdbg.state.snapshot import Snapshot, load_snapshot
from lhvdbg.state.system import system_tables
from lhvdbg.state.target import SnapshotTarget
from lhvdbg.x86.tables import SystemTables

SNAPSHOTS = Path(__file__).resolve().parent.parent / "fixtures" / "snapshots"


def recorded(name: str) -> Snapshot:
    """``tests/fixtures/snapshots/NAME.json``, or a packaged reference (``pebbles``)."""
    if name in REFERENCE_NAMES:
        return load_reference(name)
    return load_snapshot(SNAPSHOTS / f"{name}.json")


def recorded_tables(snapshot: str | Snapshot) -> SystemTables:
    """The system tables of a snapshot (or of the recorded one of that name), as the views
    read them through a SnapshotTarget."""
    snap = recorded(snapshot) if isinstance(snapshot, str) else snapshot
    return system_tables(SnapshotTarget(snap))
