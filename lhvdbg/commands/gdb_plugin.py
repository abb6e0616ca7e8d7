"""``lhvdbg gdb-plugin``: the path of the Python file that gives any gdb the ``lhv`` command.

In a gdb attached to a QEMU gdbstub (plain, or with pwndbg or GEF loaded)::

    (gdb) source /path/printed/by/lhvdbg-gdb-plugin
    (gdb) lhv idt 8

See :mod:`lhvdbg.commands._lhv_gdb` and docs/commands/gdb-plugin.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lhvdbg.commands.registry import Context, command


def plugin_path() -> Path:
    """The file to ``source`` in gdb."""
    return Path(__file__).resolve().with_name("_lhv_gdb.py")


@command(
    "gdb-plugin",
    "print the path of a Python file to source in your gdb: lhv gdt|idt|tss|pt|context|diagnose",
    category="general",
    where={"cli"},
    json="the path as JSON",
)
def gdb_plugin_command(args: argparse.Namespace, ctx: Context) -> int:
    path = plugin_path()
    if args.json:
        ctx.print_json({"path": str(path), "source": f"source {path}"})
    else:
        ctx.stdout.write(f"{path}\n")
    return 0
