"""``lhvdbg show FILE [VIEW] [--json]``: render a saved snapshot (or a reference) offline.

Views are those of the shell (``regs``, ``sregs``, ``cregs``, ``gdt``, ``idt``, ``tss``,
``pic``, ``lapic``) or ``all``; the same functions render them (:mod:`.views`).
"""

from __future__ import annotations

import argparse

from lhvdbg.commands._html import add_html_argument, check_html_path, write_html
from lhvdbg.commands.registry import Context, command
from lhvdbg.commands.views import VIEWS, run_view, view_data

CHOICES = (*VIEWS, "all")


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="snapshot file, or pebbles|lhv-amd64|lhv-i386")
    parser.add_argument(
        "view", nargs="?", default="all", choices=CHOICES, help="what to show (default: all)"
    )
    parser.add_argument("arg", nargs="?", help="gdt: a selector; idt: a vector or 'all'")
    add_html_argument(parser)


@command(
    "show", "render a saved snapshot offline", configure=_configure, category="state", where={"cli"}
)
def run(args: argparse.Namespace, ctx: Context) -> int:
    from lhvdbg.errors import LhvdbgError, UsageError
    from lhvdbg.state.references import load_reference
    from lhvdbg.state.target import SnapshotTarget

    check_html_path(args.html)
    snapshot = load_reference(args.file)
    if args.html is not None:
        from lhvdbg.ui.html import snapshot_page

        write_html(args.html, snapshot_page(snapshot, label=args.file))
    target = SnapshotTarget(snapshot)
    if args.arg is not None and args.view not in ("gdt", "idt"):
        raise UsageError(f"show: {args.view} takes no argument ({args.arg!r})")
    if args.view != "all":
        return run_view(args.view, target, ctx, arg=args.arg, as_json=args.json)
    if args.json:
        data: dict[str, object] = {}
        for name in VIEWS:
            try:
                data[name] = view_data(name, target)
            except LhvdbgError as error:
                data[name] = {"unavailable": str(error)}
        ctx.print_json(data)
        return 0
    from lhvdbg.ui.state_views import render_provenance
    from lhvdbg.ui.tables import plain

    ctx.print(render_provenance(snapshot, args.file))
    for name in VIEWS:
        ctx.print(plain(""))
        try:
            run_view(name, target, ctx)
        except LhvdbgError as error:
            ctx.print(plain(f"{name}: {error}"))
    return 0
