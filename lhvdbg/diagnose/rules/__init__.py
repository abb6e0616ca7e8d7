"""Diagnosis rules: small pure functions from (chain, evidence) to an optional Cause.

Each cause is one module of this package, registered with
``@rule(id, order=..., sdm=..., fires_on=...)`` (``_registry``); shared helpers are in
``_common``. Every module here is imported when the package is, so adding a cause is one
file plus its test: ``CAUSE_IDS``, ``RULES``, the order :func:`diagnose` runs them in and
the rules table of ``docs/diagnosis.md`` (:func:`rules_table`) all come from the registry.

Each rule recognises one known cause of "vector 8 fired", cites the evidence it used, and
says how to fix it and what the known-good reference does instead. :func:`diagnose` runs
them all and ranks what fired, most likely first; when nothing explains the chain with
high confidence, the fallback ``unexplained-chain`` gives a precise account of every
exception in order.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping, Sequence

from lhvdbg.diagnose.chain import Chain
from lhvdbg.diagnose.evidence import Evidence
from lhvdbg.diagnose.rules._registry import Cause, Confidence, RuleSpec, registered, rule

__all__ = [
    "CAUSE_IDS",
    "RULES",
    "Cause",
    "Confidence",
    "RuleSpec",
    "diagnose",
    "rule",
    "rules_table",
]


def _import_rule_modules() -> None:
    """Import every module of this package whose name has no leading underscore."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


_import_rule_modules()

_ALL: tuple[RuleSpec, ...] = registered()
RULES: tuple[RuleSpec, ...] = tuple(s for s in _ALL if not s.fallback)
"""The rules :func:`diagnose` runs, in order (the fallback left out)."""
FALLBACKS: tuple[RuleSpec, ...] = tuple(s for s in _ALL if s.fallback)
CAUSE_IDS: tuple[str, ...] = tuple(s.id for s in _ALL)
"""Every cause id, in rule order (fallbacks last)."""

_RANK = {"high": 0, "medium": 1, "low": 2}


def diagnose(chain: Chain, ev: Evidence) -> list[Cause]:
    """Every cause that fired, most likely first (confidence, then rule order); adds the
    fallback (``unexplained-chain``) when nothing explains the chain with high confidence
    and the chain has an exception or a triple fault."""
    fired: list[tuple[int, int, Cause]] = []
    decided = _model_decides(chain, ev)
    for spec in RULES:
        cause = spec(chain, ev)
        if cause is not None and (decided is None or _agrees(cause, decided)):
            fired.append((_RANK[cause.confidence], spec.order, cause))
    fired.sort(key=lambda t: (t[0], t[1]))
    causes = [c for _, _, c in fired]
    if not any(c.confidence == "high" for c in causes):
        for spec in FALLBACKS:
            fallback = spec(chain, ev)
            if fallback is not None and (chain.exceptions or chain.triple_fault is not None):
                causes.append(fallback)
    return causes


def _model_decides(chain: Chain, ev: Evidence) -> set[tuple[str, str]] | None:
    """When the delivery model could read the state and agrees with the log: every
    (check, fix field) it found failing. None when it could not (log-only, no capture) or
    when its prediction differs from what QEMU logged."""
    from lhvdbg.diagnose.explain import explain
    from lhvdbg.diagnose.rules._model import model_applies

    if not model_applies(chain, ev):
        return None
    x = explain(chain, ev)
    if any(a.agreement == "differs" for a in x.accounts):
        return None  # the capture is later than the log: where they disagree, rules decide
    return {
        (f.check.id, field) for f in explain(chain, ev).failures for field in f.check.fix_fields
    }


def _agrees(cause: Cause, decided: set[tuple[str, str]]) -> bool:
    """A cause naming a delivery check stands only when the model found that check failing
    on the fields the cause asks to mend (the model is the one place that decides whether a
    gate, selector or stack is usable); causes of other kinds stand as they are."""
    if cause.check is None:
        return True
    return bool(cause.fix_fields) and all((cause.check, f) in decided for f in cause.fix_fields)


def rules_table(matrix: Mapping[str, Sequence[str]] | None = None) -> str:
    """The rules table of ``docs/diagnosis.md`` (Markdown), from the registry. ``matrix``
    maps a cause id to the fault-matrix cases expecting it (``firmware/fault-cases.toml``):
    the "tested on" column counts them, then adds the rule's own ``tested_on`` (firmware
    variants, constructed chains)."""
    matrix = matrix or {}
    lines = [
        "| order | id | fires when | evidence it cites | answers (check ids) | Intel SDM "
        "| tested on |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for spec in _ALL:
        checks = ", ".join(f"`{c}`" for c in spec.fires_on) or "-"
        cells = [
            str(spec.order),
            f"`{spec.id}`",
            spec.description,
            spec.cites or "-",
            checks,
            spec.sdm,
            _tested_on(spec.tested_on, matrix.get(spec.id, ())),
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _tested_on(own: str | None, cases: Sequence[str]) -> str:
    parts = []
    if cases:
        first = ", ".join(f"`{name}`" for name in cases[:2])
        more = f", and {len(cases) - 2} more" if len(cases) > 2 else ""
        noun = "case" if len(cases) == 1 else "cases"
        parts.append(f"fault matrix, {len(cases)} {noun} ({first}{more})")
    if own:
        parts.append(own)
    return "; ".join(parts) or "-"
