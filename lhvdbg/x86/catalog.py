"""Every declared layout, for documentation, property tests and lookup by name.

The catalogue is filled where each layout is declared (:func:`lhvdbg.x86.layout.catalogued`);
:func:`all_layouts` imports every module of :mod:`lhvdbg.x86` first, so a layout in a new
module is listed without anyone adding it here.
"""

from __future__ import annotations

import importlib
import pkgutil

import lhvdbg.x86
from lhvdbg.x86.layout import Layout, catalogued_layouts


def all_layouts() -> list[Layout]:
    """Each layout once (per mode, paging mode and level where it differs)."""
    for module in sorted(m.name for m in pkgutil.iter_modules(lhvdbg.x86.__path__)):
        importlib.import_module(f"lhvdbg.x86.{module}")
    return catalogued_layouts()
