"""The whole diagnosis on every recorded fault-matrix case, offline.

Each case of ``firmware/fault-cases.toml`` was recorded in real QEMU
(``tests/fixtures/matrix/record.py``): the capture at the stop, the memory the collector
read and QEMU's own ``-d int,cpu_reset`` log. Ground truth is what the case injected and
that log, read by the bench's own small reader (``bench/fault_matrix.py``: ``judge``),
never lhvdbg's parser or output.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.matrix import CASES, fm, recorded_evidence, recorded_log, report_of


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_every_matrix_case_is_diagnosed_right(case: Any) -> None:
    report = report_of(case.name)
    result = fm.judge(case, recorded_log(case.name), report.to_json())
    assert result.right, result.problems


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_no_fix_asks_to_change_a_value_the_state_shows_is_right(case: Any) -> None:
    """Every field a cause names for mending failed a check of the model (or names the
    event's source): nothing the captured state shows right is to be changed."""
    report = report_of(case.name)
    from lhvdbg.diagnose.chain import build_chain
    from lhvdbg.diagnose.explain import explain

    ev = recorded_evidence(case.name)
    pic = ev.snapshot.pic if ev.snapshot is not None else None
    chain = build_chain(ev.events, tables=ev.tables, symbols=ev.symbols, pic=pic)
    failed_fields = {f for failure in explain(chain, ev).failures for f in failure.check.fix_fields}
    for cause in report.diagnosis:
        if cause.check is None or cause.id == "unexplained-chain":
            continue
        assert set(cause.fix_fields) <= failed_fields, (cause.id, cause.fix_fields)
