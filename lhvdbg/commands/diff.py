"""``lhvdbg diff A B [--json]``: compare two snapshots field by field.

A and B are snapshot files or reference names (``pebbles``, ``lhv-amd64``, ``lhv-i386``).
Values go through the layouts, so differences read ``gdt[0x20].type`` or
``cpu.segments.tr.flags.type``; a reference's ``provenance.scope`` limits what is compared.
Exit code 0 whether or not they differ (errors exit non-zero).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from lhvdbg.commands.registry import Context, command

if TYPE_CHECKING:
    from lhvdbg.state.snapshot import Snapshot


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", metavar="A", help="snapshot file or reference name")
    parser.add_argument("b", metavar="B", help="snapshot file or reference name")


@command(
    "diff",
    "compare two snapshots field by field",
    configure=_configure,
    category="state",
    where={"cli"},
)
def run(args: argparse.Namespace, ctx: Context) -> int:
    from lhvdbg.state.references import load_reference

    a, b = load_reference(args.a), load_reference(args.b)
    return print_diff(ctx, a, b, names=(args.a, args.b), as_json=args.json)


def print_diff(
    ctx: Context,
    a: Snapshot,
    b: Snapshot,
    *,
    names: tuple[str, str],
    as_json: bool,
    provenance: bool = True,
) -> int:
    """Print the differences from ``a`` to ``b`` (called ``names``): JSON, or a table after
    where each came from (with ``provenance``). Shared with the shell's ``snapdiff``."""
    from lhvdbg.state.diff import diff_snapshots

    diffs = diff_snapshots(a, b)
    if as_json:
        ctx.print_json(
            {
                "a": names[0],
                "b": names[1],
                "count": len(diffs),
                "differences": [d.to_dict() for d in diffs],
            }
        )
        return 0
    from lhvdbg.ui.state_views import render_diff, render_provenance

    if provenance:
        ctx.print(render_provenance(a, f"A {names[0]}"), render_provenance(b, f"B {names[1]}"))
    ctx.print(render_diff(diffs, "A", "B"))
    return 0
