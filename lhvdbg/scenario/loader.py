"""Read scenario files (TOML, with ``tomllib``) into :class:`Scenario` objects.

Every problem is a one-line :class:`ScenarioError` naming the file, the line and the
field: ``scenarios/x.toml:14: step[3].stepi: expected a positive integer, got 'two'``.
Syntax errors take tomllib's line and column; schema errors find the line of the key.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from lhvdbg.errors import ScenarioError
from lhvdbg.files import SCENARIO, check_file, read_text
from lhvdbg.scenario.model import OPERATORS, STEP_ACTIONS, Expectation, Origin, Scenario, Step
from lhvdbg.scenario.paths import parse_path
from lhvdbg.scenario.toml_lines import PathPart, format_path, key_lines, line_of
from lhvdbg.scenario.values import as_number

ARCHES = ("amd64", "i386")
ACCELS = ("tcg", "kvm", "auto")
QEMU_SYSTEMS = ("x86_64", "i386")  # qemu-system-NAME: never a path
TOP_KEYS = (
    "name",
    "description",
    "arch",
    "variant",
    "kernel",
    "accel",
    "timeout",
    "tags",
    "options",
    "step",
    "expect",
)
STEP_KEYS = (*STEP_ACTIONS, "timeout", "note", "save_as")
EXPECT_KEYS = ("path", "message", *OPERATORS)
# [options]: launch settings beyond arch/variant/accel, with the type each takes.
OPTION_TYPES: dict[str, type] = {
    "memory_mb": int,
    "append": str,
    "extra_args": list,
    "debug_exit": bool,
    "int_log": bool,
    "qemu_system": str,
}
_VARIANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SAVE_AS = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


class _Reader:
    """Checks values against the schema and raises errors that point into the file."""

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.lines = key_lines(text)

    def line(self, path: Sequence[PathPart]) -> int:
        return line_of(self.lines, path)

    def origin(self, path: Sequence[PathPart]) -> Origin:
        return Origin(self.name, self.line(path))

    def fail(self, path: Sequence[PathPart], message: str) -> ScenarioError:
        where = f"{self.name}:{self.line(path)}" if self.line(path) else self.name
        field = format_path(path)
        return ScenarioError(
            f"{where}: {field}: {message}" if field else f"{where}: {message}",
            file=self.name,
            line=self.line(path),
            field=field,
        )

    def check_keys(
        self, table: Mapping[str, object], allowed: Iterable[str], path: tuple[PathPart, ...]
    ) -> None:
        allowed = tuple(allowed)
        for key in table:
            if key not in allowed:
                raise self.fail((*path, key), f"unknown key (allowed: {', '.join(allowed)})")

    def string(self, value: object, path: tuple[PathPart, ...], *, empty: bool = False) -> str:
        if not isinstance(value, str):
            raise self.fail(path, f"expected a string, got {_kind(value)}")
        if not empty and not value.strip():
            raise self.fail(path, "must not be empty")
        return value

    def choice(
        self, value: object, path: tuple[PathPart, ...], choices: Sequence[str], what: str
    ) -> str:
        text = self.string(value, path)
        if text not in choices:
            raise self.fail(path, f"unknown {what} {text!r} (one of {', '.join(choices)})")
        return text

    def positive(self, value: object, path: tuple[PathPart, ...]) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise self.fail(path, f"expected a positive number of seconds, got {_show(value)}")
        return float(value)

    def count(self, value: object, path: tuple[PathPart, ...], *, minimum: int = 1) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise self.fail(path, f"expected {what}, got {_show(value)}")
        return value

    def true(self, value: object, path: tuple[PathPart, ...]) -> bool:
        if value is not True:
            raise self.fail(path, f"expected true, got {_show(value)}")
        return True

    def tables(
        self, value: object, path: tuple[PathPart, ...]
    ) -> Iterator[tuple[int, dict[str, object]]]:
        if isinstance(value, dict):
            yield 0, value
            return
        if not isinstance(value, list):
            raise self.fail(path, f"expected a table or an array of tables, got {_kind(value)}")
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise self.fail((*path, index), f"expected a table, got {_kind(item)}")
            yield index, item


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _show(value: object) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return _kind(value)
    return str(value)


def load_scenario(path: Path | str) -> Scenario:
    """Read and check one scenario file."""
    path = Path(path)
    text = read_text(path, SCENARIO)
    return parse_scenario(text, name=str(path), path=path)


def parse_scenario(text: str, *, name: str = "<scenario>", path: Path | None = None) -> Scenario:
    """Check the TOML ``text`` of a scenario; ``name`` is used in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        position = _TOML_POSITION.search(message)
        if position:
            message = message[: position.start()]
            where = f"{name}:{position.group(1)}:{position.group(2)}"
            line = int(position.group(1))
        else:
            where, line = name, 0
        raise ScenarioError(
            f"{where}: TOML syntax: {message}", file=name, line=line, field=""
        ) from exc
    return _build(_Reader(name, text), data, path)


def _build(r: _Reader, data: dict[str, object], path: Path | None) -> Scenario:
    r.check_keys(data, TOP_KEYS, ())
    if "arch" not in data:
        raise r.fail((), f"missing key 'arch' (one of {', '.join(ARCHES)})")
    arch = r.choice(data["arch"], ("arch",), ARCHES, "architecture")
    variant = kernel = None
    if "variant" in data:
        variant = r.string(data["variant"], ("variant",))
        if not _VARIANT.match(variant):
            raise r.fail(("variant",), f"not a firmware variant name: {variant!r}")
    if "kernel" in data:
        kernel_text = r.string(data["kernel"], ("kernel",))
        kernel = Path(kernel_text)
        if not kernel.is_absolute() and path is not None:
            kernel = path.parent / kernel
    if (variant is None) == (kernel is None):
        raise r.fail((), "give exactly one of 'variant' (a firmware build) or 'kernel' (a path)")
    accel = r.choice(data.get("accel", "tcg"), ("accel",), ACCELS, "accelerator")
    timeout = r.positive(data.get("timeout", 60), ("timeout",))
    tags_value = data.get("tags", [])
    if not isinstance(tags_value, list):
        raise r.fail(("tags",), f"expected an array of strings, got {_kind(tags_value)}")
    tags = tuple(r.string(tag, ("tags", i)) for i, tag in enumerate(tags_value))
    options = data.get("options", {})
    if not isinstance(options, dict):
        raise r.fail(("options",), f"expected a table, got {_kind(options)}")
    r.check_keys(options, OPTION_TYPES, ("options",))
    for key, value in options.items():
        wanted = OPTION_TYPES[key]
        if not isinstance(value, wanted) or (wanted is int and isinstance(value, bool)):
            raise r.fail(("options", key), f"expected {wanted.__name__}, got {_show(value)}")
        if isinstance(value, list):
            for i, item in enumerate(value):
                r.string(item, ("options", key, i))
    if "qemu_system" in options and options["qemu_system"] not in QEMU_SYSTEMS:
        raise r.fail(
            ("options", "qemu_system"),
            f"unknown QEMU {_show(options['qemu_system'])} (one of {', '.join(QEMU_SYSTEMS)})",
        )
    default_name = path.stem if path is not None else "scenario"
    steps_value = data.get("step", [])
    if not isinstance(steps_value, list):
        raise r.fail(("step",), "expected an array of tables ([[step]])")
    steps = []
    for index, table in enumerate(steps_value):
        if not isinstance(table, dict):
            raise r.fail(("step", index), f"expected a table, got {_kind(table)}")
        steps.append(_step(r, table, ("step", index)))
    expects = _expectations(r, data["expect"], ("expect",)) if "expect" in data else ()
    if not steps and not expects:
        raise r.fail((), "no steps and no assertions: add [[step]] or [[expect]] tables")
    return Scenario(
        name=r.string(data.get("name", default_name), ("name",)),
        path=path,
        arch=arch,
        variant=variant,
        kernel=kernel,
        accel=accel,  # type: ignore[arg-type]  # checked against ACCELS above
        timeout=timeout,
        description=r.string(data.get("description", ""), ("description",), empty=True),
        tags=tags,
        steps=tuple(steps),
        expects=expects,
        options=dict(options),
    )


def _step(r: _Reader, table: dict[str, object], path: tuple[PathPart, ...]) -> Step:
    r.check_keys(table, STEP_KEYS, path)
    actions = [key for key in STEP_ACTIONS if key in table and key != "expect"]
    if len(actions) > 1:
        raise r.fail(path, f"one action per step, found {', '.join(actions)}")
    if not actions and "expect" not in table:
        raise r.fail(path, f"no action: give one of {', '.join(STEP_ACTIONS)}")
    action = actions[0] if actions else "expect"
    where = (*path, action)
    value = table[action]
    arg: object
    if action in ("break", "hbreak"):
        if isinstance(value, int) and not isinstance(value, bool):
            arg = r.count(value, where, minimum=0)
        else:
            arg = r.string(value, where)
    elif action == "delete":
        arg = True if value is True else r.count(value, where)
    elif action == "stepi":
        arg = 1 if value is True else r.count(value, where)
    elif action == "ticks":
        arg = r.count(value, where)
    elif action in ("wait_serial", "diff", "run"):
        arg = r.string(value, where)
    elif action == "capture":
        arg = True if value is True else r.string(value, where)
    elif action == "expect":
        arg = True
    else:  # continue, until_df, diagnose, reset
        arg = r.true(value, where)
    save_as = None
    if "save_as" in table:
        if action != "run":
            raise r.fail((*path, "save_as"), "only a 'run' step can keep its output")
        save_as = r.string(table["save_as"], (*path, "save_as"))
        if not _SAVE_AS.match(save_as):
            raise r.fail((*path, "save_as"), f"not an identifier: {save_as!r}")
    expects = _expectations(r, table["expect"], (*path, "expect")) if "expect" in table else ()
    return Step(
        action=action,
        arg=arg,
        timeout=r.positive(table["timeout"], (*path, "timeout")) if "timeout" in table else None,
        save_as=save_as,
        expects=expects,
        origin=r.origin(where),
        note=r.string(table.get("note", ""), (*path, "note"), empty=True),
    )


def _expectations(r: _Reader, value: object, path: tuple[PathPart, ...]) -> tuple[Expectation, ...]:
    out = []
    for index, table in r.tables(value, path):
        where = (*path, index) if isinstance(value, list) else path
        out.append(_expectation(r, table, where))
    if not out:
        raise r.fail(path, "no assertions in the array")
    return tuple(out)


def _expectation(r: _Reader, table: dict[str, object], path: tuple[PathPart, ...]) -> Expectation:
    r.check_keys(table, EXPECT_KEYS, path)
    if "path" not in table:
        raise r.fail(path, "missing key 'path' (a field path such as tr.selector)")
    field_path = r.string(table["path"], (*path, "path"))
    try:
        parse_path(field_path)
    except ValueError as exc:
        raise r.fail((*path, "path"), str(exc)) from None
    ops = [key for key in OPERATORS if key in table]
    if len(ops) != 1:
        found = ", ".join(ops) if ops else "none"
        raise r.fail(path, f"give exactly one operator ({', '.join(OPERATORS)}); found {found}")
    op = ops[0]
    value = table[op]
    where = (*path, op)
    if op == "matches":
        pattern = r.string(value, where)
        try:
            re.compile(pattern)
        except re.error as exc:
            raise r.fail(where, f"bad regular expression: {exc}") from None
    elif op == "one_of" and not isinstance(value, list):
        raise r.fail(where, f"expected an array, got {_kind(value)}")
    elif op in ("gt", "ge", "lt", "le") and as_number(value) is None:
        raise r.fail(where, f"expected a number, got {_show(value)}")
    elif op == "length":
        r.count(value, where, minimum=0)
    elif op in ("exists", "is_null") and not isinstance(value, bool):
        raise r.fail(where, f"expected true or false, got {_show(value)}")
    return Expectation(
        path=field_path,
        op=op,
        value=value,
        origin=r.origin(path),
        message=r.string(table.get("message", ""), (*path, "message"), empty=True),
    )


def collect_files(paths: Iterable[Path | str]) -> list[Path]:
    """Scenario files named by ``paths``: files as given, directories searched for *.toml."""
    files: list[Path] = []
    for item in paths:
        item = Path(item)
        if item.is_dir():
            files.extend(sorted(item.rglob("*.toml")))
        elif item.exists():
            check_file(item, SCENARIO)  # a regular file within the limit, or one line
            files.append(item)
        else:
            raise ScenarioError(f"{item}: no such scenario file or directory", file=str(item))
    return files
