"""Known-good reference snapshots, shipped with the package.

``pebbles``: the CMU 15-410 Pebbles tables, built from its source by
``scripts/make_pebbles_reference.py`` (its ``provenance.scope`` says what is known).
``lhv-amd64`` / ``lhv-i386``: lhvdbg's own fixed firmware (the ``good`` build), captured
from a live QEMU by ``scripts/make_lhv_reference.py`` (``lhvdbg snapshot``) and checked in
as ``lhvdbg/state/references/<name>.json``.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

from lhvdbg.errors import SnapshotError
from lhvdbg.state.snapshot import Snapshot, load_snapshot, loads_snapshot

__all__ = ["REFERENCE_NAMES", "load_reference", "reference_path"]

REFERENCE_NAMES: tuple[str, ...] = ("pebbles", "lhv-amd64", "lhv-i386")

_HOW_TO_MAKE = {
    "pebbles": "run scripts/make_pebbles_reference.py",
    "lhv-amd64": "run scripts/make_lhv_reference.py amd64",
    "lhv-i386": "run scripts/make_lhv_reference.py i386",
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
        return _shipped(name_or_path)
    path = Path(name_or_path)
    if not path.exists() and path.suffix != ".json" and "/" not in name_or_path:
        raise SnapshotError(
            f"{name_or_path}: not a snapshot file nor a reference name "
            f"({', '.join(REFERENCE_NAMES)})"
        )
    return load_snapshot(path)


def _shipped(name: str) -> Snapshot:
    """A shipped reference (SnapshotError naming how to make it when it is missing)."""
    resource = resources.files("lhvdbg.state").joinpath("references", f"{name}.json")
    try:
        text = resource.read_bytes()
    except OSError:
        raise SnapshotError(
            f"reference {name} is not available: lhvdbg/state/references/{name}.json is "
            f"missing ({_HOW_TO_MAKE[name]})"
        ) from None
    return _parsed(text, f"reference {name}")


@functools.lru_cache(maxsize=2 * len(REFERENCE_NAMES))
def _parsed(text: bytes, what: str) -> Snapshot:
    """A reference's text parsed and checked once per process and content (a Snapshot is
    immutable; this takes 10-20 ms, which break-on-df spends while the guest runs)."""
    return loads_snapshot(text, what)
