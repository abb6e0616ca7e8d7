"""Check assertions (:class:`Expectation`) against the facts dict.

Numbers compare as numbers whatever their spelling: ``equals = 0x20``, ``equals = 32``
and ``equals = "0x20"`` all match an ``irq_base`` of 32. Booleans only equal booleans.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lhvdbg.scenario.model import Expectation
from lhvdbg.scenario.paths import Missing, resolve
from lhvdbg.scenario.values import as_number, show_pair, show_value

__all__ = ["Outcome", "as_number", "check", "show_value"]


@dataclass(frozen=True)
class Outcome:
    """The result of one assertion: the actual value (or why it is missing)."""

    expectation: Expectation
    passed: bool
    actual: object

    def explain(self) -> str:
        """One line: what was expected and what was found."""
        e = self.expectation
        wanted, found = show_pair(e.value, self.actual)
        if isinstance(self.actual, Missing):
            found = f"no value ({self.actual})"
        text = f"{e.path}: expected {e.op.replace('_', ' ')} {wanted}, actual {found}"
        return f"{text} — {e.message}" if e.message else text


def check(expectation: Expectation, facts: Mapping[str, object]) -> Outcome:
    """Evaluate one assertion against ``facts``."""
    actual = resolve(facts, expectation.path)
    return Outcome(expectation, _test(expectation.op, actual, expectation.value), actual)


def _test(op: str, actual: object, expected: object) -> bool:
    if op == "exists":
        return (not isinstance(actual, Missing)) == expected
    if isinstance(actual, Missing):
        return False
    if op == "is_null":
        return (actual is None) == expected
    if op == "equals":
        return _equal(actual, expected)
    if op == "not_equals":
        return not _equal(actual, expected)
    if op in ("contains", "not_contains"):
        return _contains(actual, expected) == (op == "contains")
    if op == "matches":
        return re.search(str(expected), _text(actual)) is not None
    if op == "one_of":
        return isinstance(expected, list) and any(_equal(actual, item) for item in expected)
    if op in ("gt", "ge", "lt", "le"):
        a, b = as_number(actual), as_number(expected)
        if a is None or b is None:
            return False
        return {"gt": a > b, "ge": a >= b, "lt": a < b, "le": a <= b}[op]
    if op == "length":
        return isinstance(actual, Sequence | Mapping) and len(actual) == expected
    raise ValueError(f"unknown operator {op}")


def _equal(actual: object, expected: object) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
    if isinstance(actual, int | float) or isinstance(expected, int | float):
        a, b = as_number(actual), as_number(expected)
        return a is not None and b is not None and a == b
    if isinstance(actual, str) and isinstance(expected, str):
        return actual == expected
    if isinstance(actual, Sequence) and isinstance(expected, Sequence):
        return len(actual) == len(expected) and all(
            _equal(x, y) for x, y in zip(actual, expected, strict=True)
        )
    return actual == expected


def _contains(actual: object, expected: object) -> bool:
    """Substring of a string; key of a table; item of a list, where a table as the
    expected value matches any item that has (at least) those fields."""
    if isinstance(actual, str):
        return str(expected) in actual
    if isinstance(actual, Mapping):
        return expected in actual
    if isinstance(actual, Sequence):
        if isinstance(expected, Mapping):
            return any(_has_fields(item, expected) for item in actual)
        return any(_equal(item, expected) for item in actual)
    return False


def _has_fields(item: object, fields: Mapping[object, object]) -> bool:
    return isinstance(item, Mapping) and all(
        key in item and _equal(item[key], value) for key, value in fields.items()
    )


def _text(value: object) -> str:
    return value if isinstance(value, str) else show_value(value)
