"""The scenario model: what a scenario file says, as frozen data.

A scenario names a kernel (a firmware variant and architecture, or a path), how to run it
(accelerator, time limit), an ordered list of steps, and assertions on the state. The TOML
form is read by :mod:`lhvdbg.scenario.loader`; the Python API builds the same objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from lhvdbg.scenario.values import show_value

Accel = Literal["tcg", "kvm", "auto"]

# Each step does exactly one of these (the key that names the step's action).
STEP_ACTIONS = (
    "break",  # LOC: a breakpoint (software under TCG)
    "hbreak",  # LOC: a hardware breakpoint
    "delete",  # true: every breakpoint; N: breakpoint number N
    "continue",  # true: run until the next stop (breakpoint, fault) or the step's timeout
    "stepi",  # N: single-step N instructions
    "until_df",  # true: run to vector 8 (or a triple fault), then diagnose
    "wait_serial",  # TEXT: run until the console printed TEXT
    "ticks",  # N: let N timer interrupts be delivered
    "capture",  # true or FILE: capture the state now (and save it as a snapshot file)
    "diagnose",  # true: diagnose the current stop
    "diff",  # REF: diff the current state against a reference (name or snapshot file)
    "run",  # "CMD ARGS": any registry command offered in scenarios
    "reset",  # true: restart the machine
    "expect",  # assertions on the state at this point
)

# Assertion operators: ``path`` plus exactly one of these.
OPERATORS = (
    "equals",
    "not_equals",
    "contains",
    "not_contains",
    "matches",
    "one_of",
    "gt",
    "ge",
    "lt",
    "le",
    "length",
    "exists",
    "is_null",
)


@dataclass(frozen=True)
class Origin:
    """Where something was written: file and 1-based line (0 when built in Python)."""

    file: str
    line: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True)
class Expectation:
    """One assertion: the value at ``path`` compared with ``value`` by ``op``."""

    path: str
    op: str
    value: object
    origin: Origin = field(default_factory=lambda: Origin("<python>"))
    message: str = ""

    def describe(self) -> str:
        """``tr.selector equals 0x18`` — how the assertion reads in a report."""
        return f"{self.path} {self.op} {show_value(self.value)}"


@dataclass(frozen=True)
class Step:
    """One step: an action with its argument, per-step options, and its assertions."""

    action: str
    arg: object = True
    timeout: float | None = None
    save_as: str | None = None  # ``run``: keep the command's --json output under this name
    expects: tuple[Expectation, ...] = ()
    origin: Origin = field(default_factory=lambda: Origin("<python>"))
    note: str = ""

    def describe(self) -> str:
        """A short text such as ``break kernel_main`` or ``wait_serial 'tick'``."""
        if self.action == "expect":
            return "expect " + "; ".join(e.describe() for e in self.expects)
        if self.arg is True:
            return self.action
        if isinstance(self.arg, str):
            return f"{self.action} {self.arg!r}"
        return f"{self.action} {self.arg}"


@dataclass(frozen=True)
class Scenario:
    """A whole scenario."""

    name: str
    path: Path | None
    arch: str
    variant: str | None = None
    kernel: Path | None = None
    accel: Accel = "tcg"
    timeout: float = 60.0
    description: str = ""
    tags: tuple[str, ...] = ()
    steps: tuple[Step, ...] = ()
    expects: tuple[Expectation, ...] = ()  # checked after the last step
    options: Mapping[str, object] = field(default_factory=dict)  # extra launch options

    @property
    def label(self) -> str:
        """A stable identifier: the file stem, or the name when built in Python."""
        return self.path.stem if self.path is not None else self.name
