"""The fuzz tier: every parser of outside input, fed random and mutated input, ends in a
result or a one-line LhvdbgError — never another exception, never more than
MEMORY_LIMIT bytes of Python allocations, never past the hypothesis deadline.

Inputs: kernels (ELF and multiboot headers), snapshot files, scenario files, HMP text
(``info registers/pic/lapic``), ``-d int`` logs and ``decode`` arguments. Mutations start
from the real fixtures, so most examples get past the first check and reach the deep
parts. Time is bounded by ``settings(deadline, max_examples)``; memory by tracemalloc.
"""

from __future__ import annotations

import io
import json
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lhvdbg.commands.index import COMMANDS
from lhvdbg.commands.registry import Context, load_command
from lhvdbg.diagnose.intlog import parse_int_log
from lhvdbg.errors import LhvdbgError
from lhvdbg.scenario.facts import snapshot_facts
from lhvdbg.scenario.loader import parse_scenario
from lhvdbg.state.elf import (
    find_lidt,
    find_multiboot_header,
    find_sti,
    inspect_elf,
    inspect_kernel,
    kernel_class_quick,
)
from lhvdbg.state.snapshot import loads_snapshot
from lhvdbg.x86.hmp import parse_info_lapic, parse_info_pic, parse_info_registers
from tests.unit.test_elf import CODE, build_elf, multiboot

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
MEMORY_LIMIT = 64 * 1024 * 1024
FUZZ = settings(
    max_examples=60,
    deadline=10_000,  # ms per example: generous on a loaded 2-core machine, still a bound
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
T = TypeVar("T")


def bounded(parse: Callable[[], T]) -> T | LhvdbgError:
    """``parse()``'s result, or the LhvdbgError it raised (checked to be one line); any
    other exception fails the test, and so does allocating more than MEMORY_LIMIT."""
    tracemalloc.start()
    try:
        return parse()
    except LhvdbgError as error:
        text = str(error)
        assert text and "\n" not in text, repr(text)
        return error
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < MEMORY_LIMIT, f"{peak} bytes allocated"


def mutated(data: bytes) -> st.SearchStrategy[bytes]:
    """``data`` with a few bytes overwritten, cut short, or grown with random bytes."""

    def apply(edits: list[tuple[int, int]], cut: int | None, tail: bytes) -> bytes:
        out = bytearray(data)
        for position, value in edits:
            if out:
                out[position % len(out)] = value
        if cut is not None:
            out = out[: cut % (len(out) + 1)]
        return bytes(out) + tail

    return st.builds(
        apply,
        st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=8),
        st.none() | st.integers(0, 1 << 20),
        st.binary(max_size=64),
    )


def mutated_text(text: str) -> st.SearchStrategy[str]:
    """``text`` with lines dropped, repeated or garbled (printable noise, hex digits)."""
    lines = text.splitlines()
    noise = st.text(alphabet="0123456789abcdefxX=:[]{}\"' \t.-_ZQ\n", max_size=40)

    def apply(edits: list[tuple[int, int, str]]) -> str:
        out = list(lines)
        for position, how, junk in edits:
            if not out:
                out.append(junk)
                continue
            i = position % len(out)
            if how == 0:
                del out[i]
            elif how == 1:
                out.insert(i, out[i])
            elif how == 2:
                out[i] = junk
            else:
                cut = position % (len(out[i]) + 1)
                out[i] = out[i][:cut] + junk + out[i][cut:]
        return "\n".join(out)

    return st.builds(
        apply,
        st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 3), noise), max_size=6),
    )


# --- kernels -----------------------------------------------------------------------------

GOOD_KERNELS = [
    build_elf(multiboot() + CODE, symbols={"kernel_main": (0x10000C, 8)}),
    build_elf(multiboot(0x10000, aout=(0x100000, 0x100000, 0, 0, 0x10000C)) + CODE, elf_class=64),
]


def _kernel(image: bytes) -> object:
    with tempfile.NamedTemporaryFile(suffix=".elf") as f:
        f.write(image)
        f.flush()
        header = find_multiboot_header(image)
        quick = bounded(lambda: kernel_class_quick(f.name))
        info = bounded(lambda: inspect_elf(f.name))
        if not isinstance(info, LhvdbgError):
            info.symbolize(0x10000C)
            find_lidt(info)
            find_sti(info)
        return header, quick, info, bounded(lambda: inspect_kernel(f.name))


@FUZZ
@given(st.sampled_from(GOOD_KERNELS).flatmap(mutated) | st.binary(max_size=2048))
def test_kernels(image: bytes) -> None:
    _kernel(image)


# --- snapshots -----------------------------------------------------------------------------

SNAPSHOT_TEXTS = [p.read_text() for p in sorted((FIXTURES / "snapshots").glob("*.json"))]
json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.text(alphabet="0x123456789abcdefg-", max_size=24)
    | st.just("0x" + "f" * 200)
    | st.lists(st.integers(), max_size=3)
)


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(node, dict):
        return [leaf for k, v in node.items() for leaf in _leaves(v, (*path, k))] or [path]
    if isinstance(node, list):
        return [leaf for i, v in enumerate(node) for leaf in _leaves(v, (*path, i))] or [path]
    return [path]


@st.composite
def snapshot_texts(draw: st.DrawFn) -> str:
    data = json.loads(draw(st.sampled_from(SNAPSHOT_TEXTS)))
    leaves = _leaves(data)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(leaves))
        node = data
        for key in path[:-1]:
            node = node[key]
        if path:
            node[path[-1]] = draw(json_leaf)
    return json.dumps(data)


def _snapshot(text: str | bytes) -> None:
    snap = bounded(lambda: loads_snapshot(text, "fuzz.json"))
    if not isinstance(snap, LhvdbgError):  # a loaded snapshot renders as facts too
        bounded(lambda: snapshot_facts(snap))


@FUZZ
@given(snapshot_texts())
def test_snapshot_fields(text: str) -> None:
    _snapshot(text)


@FUZZ
@given(st.sampled_from([t.encode() for t in SNAPSHOT_TEXTS]).flatmap(mutated))
def test_snapshot_bytes(data: bytes) -> None:
    _snapshot(data)


# --- scenario files ------------------------------------------------------------------------

SCENARIO_TEXTS = [p.read_text() for p in sorted(SCENARIOS.glob("*.toml"))]


@FUZZ
@given(st.sampled_from(SCENARIO_TEXTS).flatmap(mutated_text) | st.text(max_size=300))
def test_scenario_files(text: str) -> None:
    bounded(lambda: parse_scenario(text, name="fuzz.toml", path=Path("/tmp/fuzz.toml")))


# --- HMP text and -d int logs ----------------------------------------------------------

HMP = {
    kind: [p.read_text() for p in sorted((FIXTURES / "hmp").glob(f"{kind}-*.txt"))]
    for kind in ("registers", "pic", "lapic")
}
PARSERS: dict[str, Callable[[str], object]] = {
    "registers": parse_info_registers,
    "pic": parse_info_pic,
    "lapic": parse_info_lapic,
}


@FUZZ
@given(
    st.sampled_from(sorted(HMP)).flatmap(
        lambda k: st.tuples(st.just(k), st.sampled_from(HMP[k]).flatmap(mutated_text))
    )
)
def test_hmp_text(case: tuple[str, str]) -> None:
    kind, text = case
    bounded(lambda: PARSERS[kind](text))


INT_LOGS = [p.read_text() for p in sorted((FIXTURES / "intlog").glob("*.log"))]


@FUZZ
@given(st.sampled_from(INT_LOGS).flatmap(mutated_text) | st.text(max_size=300))
def test_int_logs(text: str) -> None:
    bounded(lambda: parse_int_log(text))


# --- decode arguments --------------------------------------------------------------------

DECODE = load_command("decode", COMMANDS)
KINDS = ("descriptor", "gate", "selector", "error-code", "tss32", "tss64", "eflags", "cr0")
KINDS += ("cr3", "cr4", "efer", "pte")
token = st.one_of(
    st.text(alphabet="0123456789abcdefABCDEFxX_-:, ", min_size=1, max_size=40),
    st.integers(-(2**80), 2**130).map(hex),
    st.sampled_from(["@/dev/zero", "@/dev/urandom", "@/nonexistent", "@/tmp", "-0x10", ""]),
)


@FUZZ
@given(
    st.sampled_from(KINDS),
    st.lists(token, min_size=0, max_size=5),
    st.lists(st.sampled_from(["--mode", "long", "--paging", "pae", "--level", "3", "--json"])),
)
def test_decode_arguments(kind: str, values: list[str], flags: list[str]) -> None:
    def decode() -> int:
        args = DECODE.parser(prog="decode").parse_args([kind, *values, *flags])
        return DECODE.run(args, Context(stdout=io.StringIO(), color=False))

    result = bounded(decode)
    assert isinstance(result, LhvdbgError) or result == 0
