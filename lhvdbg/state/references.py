"""Known-good reference snapshots, shipped with the package.

``pebbles``: the CMU 15-410 Pebbles tables, built from its source by
``scripts/make_pebbles_reference.py`` (its ``provenance.scope`` says what is known).
``lhv-amd64`` / ``lhv-i386``: lhvdbg's own fixed firmware (the ``good`` build), captured
from a live QEMU with ``lhvdbg snapshot`` and checked in as
``lhvdbg/state/references/<name>.json``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from lhvdbg.errors import SnapshotError
from lhvdbg.state.snapshot import Snapshot, load_snapshot, loads_snapshot

__all__ = ["REFERENCE_NAMES", "load_reference", "reference_path"]

REFERENCE_NAMES: tuple[str, ...] = ("pebbles", "lhv-amd64", "lhv-i386")

_HOW_TO_MAKE = {
    "pebbles": "run scripts/make_pebbles_reference.py",
    "lhv-amd64": "capture it from the good amd64 firmware with `lhvdbg snapshot`",
    "lhv-i386": "capture it from the good i386 firmware with `lhvdbg snapshot`",
}


def reference_path(name: str) -> Path:
    """Where the reference ``name`` lives in the installed package (it may not exist)."""
    if name not in REFERENCE_NAMES:
        raise SnapshotError(
            f"unknown reference {name!r}: expected one of {', '.join(REFERENCE_NAMES)}"
        )
    return Path(str(resources.files("lhvdbg.state").joinpath("references", f"{name}.json")))


def load_reference(name_or_path: str) -> Snapshot:
    """A reference by name (``pebbles``, ``lhv-amd64``, ``lhv-i386``) or a snapshot file.

    A name whose file is not shipped yet, an unknown name, or a bad file raises a one-line
    SnapshotError.
    """
    if name_or_path in REFERENCE_NAMES:
        resource = resources.files("lhvdbg.state").joinpath("references", f"{name_or_path}.json")
        try:
            text = resource.read_bytes()
        except OSError:
            raise SnapshotError(
                f"reference {name_or_path} is not available: "
                f"lhvdbg/state/references/{name_or_path}.json is missing "
                f"({_HOW_TO_MAKE[name_or_path]})"
            ) from None
        return loads_snapshot(text, f"reference {name_or_path}")
    path = Path(name_or_path)
    if not path.exists() and path.suffix != ".json" and "/" not in name_or_path:
        raise SnapshotError(
            f"{name_or_path}: not a snapshot file nor a reference name "
            f"({', '.join(REFERENCE_NAMES)})"
        )
    return load_snapshot(path)
