"""The shell's heaviest views on a live machine, against the raw reads they need (prints only).

Issue 10 §5 asks for ``idt`` (all 256 gates) and ``cregs`` in the shell to take ≤ 50 ms.
On the amd64 ``good`` firmware stopped at its first timer tick, each view is rendered to
plain text the way the shell prints it (registry view function + rich rendering), and
timed against the baseline in the same run: the session's own reads that view needs
(``info registers`` over QMP and, for ``idt``, one read of the IDT's 4 KiB). Medians of
``--repeat`` rounds, alternating view and baseline. Usage:
``.venv/bin/python bench/bench_views.py [--repeat N]``. Never asserts on timing.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lhvdbg.commands.views import view_renderable  # noqa: E402
from lhvdbg.machine.session import LaunchConfig, Session  # noqa: E402
from lhvdbg.ui.console import make_console  # noqa: E402

GOAL_MS = 50.0


def _ms(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)
    with Session(LaunchConfig.for_variant("good", "amd64")) as session:
        session.run_to_timer(timeout=20)
        target = session.target

        def render(name: str) -> Callable[[], object]:
            def run() -> object:
                out = io.StringIO()
                console = make_console(file=out, width=120)
                console.print(view_renderable(name, target, "all" if name == "idt" else None))
                return out.getvalue()

            return run

        def raw(name: str) -> Callable[[], object]:
            def run() -> object:
                text = session.hmp("info registers")
                if name == "idt":
                    cpu = target.cpu()
                    session.read_memory(cpu.idtr.base, cpu.idtr.limit + 1)
                return text

            return run

        print(f"amd64 good firmware at its first timer tick; {args.repeat} rounds each")
        for name in ("idt", "cregs"):
            view_t, raw_t = [], []
            for _ in range(args.repeat):
                view_t.append(_ms(render(name)))
                raw_t.append(_ms(raw(name)))
            v, r = statistics.median(view_t), statistics.median(raw_t)
            print(
                f"{name:6} view {v:7.2f} ms   raw reads {r:6.2f} ms   ratio {v / r:5.2f}   "
                f"(goal ≤ {GOAL_MS:g} ms: {'met' if v <= GOAL_MS else 'NOT met'})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
