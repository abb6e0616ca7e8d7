"""The rule registry: :class:`Cause`, the :func:`rule` decorator and what it records.

A rule is a pure function ``(Chain, Evidence) -> Cause | None`` in its own module of this
package, registered with ``@rule(id, order=..., sdm=..., fires_on=...)``. The registry is
the one list of causes: ``CAUSE_IDS``, the order :func:`lhvdbg.diagnose.rules.diagnose`
runs them in and the rules table of ``docs/diagnosis.md`` are all read from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from lhvdbg.diagnose.chain import Chain
    from lhvdbg.diagnose.evidence import Evidence

__all__ = ["Cause", "Confidence", "RuleFunction", "RuleSpec", "registered", "rule"]

Confidence = Literal["high", "medium", "low"]


@dataclass(frozen=True)
class Cause:
    """A diagnosed cause: stable id, one-line summary, evidence lines, fix, confidence.

    ``check`` is the delivery check (the check ids of ``docs/diagnosis.md``, e.g.
    ``gate-present``) the cause explains, when one does; ``fix_fields`` name the state the
    fix changes, in the fix-field vocabulary (``idt[0x20].present``, ``pic.master.base``).
    """

    id: str
    summary: str
    evidence: tuple[str, ...]
    fix: str
    confidence: Confidence
    reference: str = ""  # what the known-good reference does instead
    check: str | None = None
    fix_fields: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "id": self.id,
            "summary": self.summary,
            "evidence": list(self.evidence),
            "fix": self.fix,
            "confidence": self.confidence,
            "reference": self.reference,
            "check": self.check,
            "fix_fields": list(self.fix_fields),
        }


RuleFunction = Callable[["Chain", "Evidence"], "Cause | None"]


@dataclass(frozen=True)
class RuleSpec:
    """A registered rule: its cause id, rank among rules, the SDM section it rests on,
    the delivery checks (or abnormal events) it answers, and the function itself.

    ``fallback``: run only when no other rule gave a high-confidence cause
    (``unexplained-chain``). ``cites`` (the evidence its causes quote) and ``tested_on``
    (what the rule is tested on) are for the docs.
    """

    id: str
    order: int
    sdm: str
    fires_on: tuple[str, ...]
    function: RuleFunction
    fallback: bool = False
    cites: str = ""
    tested_on: str = ""

    @property
    def description(self) -> str:
        """The rule function's docstring as one paragraph: when it fires."""
        doc = self.function.__doc__ or ""
        return " ".join(doc.split())

    def __call__(self, chain: Chain, ev: Evidence) -> Cause | None:
        return self.function(chain, ev)


_REGISTRY: dict[str, RuleSpec] = {}


def rule(
    cause_id: str,
    *,
    order: int,
    sdm: str,
    fires_on: tuple[str, ...] = (),
    fallback: bool = False,
    cites: str = "",
    tested_on: str = "",
) -> Callable[[RuleFunction], RuleFunction]:
    """Register the decorated function as the rule for ``cause_id``.

    ``order`` ranks rules of equal confidence (root causes first); ids and orders must be
    unique. The function is returned unchanged.
    """

    def register(function: RuleFunction) -> RuleFunction:
        if cause_id in _REGISTRY:
            raise ValueError(f"cause {cause_id!r} registered twice")
        clash = next((s.id for s in _REGISTRY.values() if s.order == order), None)
        if clash is not None:
            raise ValueError(f"rule {cause_id!r}: order {order} already taken by {clash!r}")
        _REGISTRY[cause_id] = RuleSpec(
            cause_id, order, sdm, tuple(fires_on), function, fallback, cites, tested_on
        )
        return function

    return register


def registered() -> tuple[RuleSpec, ...]:
    """Every registered rule, in order."""
    return tuple(sorted(_REGISTRY.values(), key=lambda s: s.order))
