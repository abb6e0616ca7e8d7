"""Example outputs in the docs, generated from real runs (``make docs``) and checked for drift.

A fenced block in a Markdown page is *generated* when the line right before its opening
fence is a marker comment::

    <!-- example -->
    <!-- example: head=12 exit=1 -->

Inside the block, each ``$ COMMAND`` line (continued on the next line after a ``\\``) is
run (``bash -c`` from the repository root, ``.venv/bin`` first on ``PATH``, ``NO_COLOR=1``,
``COLUMNS=100``, stdin empty, stderr merged into stdout) and the lines up to the next ``$``
line are replaced by what it printed. With ``shell=ARGS`` the block is a shell transcript
instead: its ``lhvdbg> CMD`` lines are run as ``lhvdbg shell ARGS -x CMD ...`` and the
banner is left out. Options (``key=value``, shell quoting; see ``Options`` and
docs/contributing.md, "Examples in the docs") cut the output down to an excerpt, with
``...`` where lines were left out. A non-zero exit is shown as a last line
``# exit status N`` and must be the block's ``exit=N``.

Each page with generated blocks ends with one line naming the QEMU version the examples
were made with (``PROVENANCE``). ``tests/integration/test_docs_examples.py`` re-runs every
block and fails when a page says something the program no longer prints; it compares only
when the running QEMU is that version. Blocks marked ``offline`` start no QEMU and are
checked in ``tests/unit/test_docs_generator.py`` on every QEMU.

Run as ``python -m tests.docs_examples [--check] [PAGE ...]`` (``make docs``).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from lhvdbg.machine.launch import kvm_usable as _kvm_usable
from tests.kernels import NO_IDT, RESET_CF9, RESET_KBC, TRIPLE_FAULT, build_kernel, reset_kernel

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^<!-- example(?::\s*(?P<options>.*?))?\s*-->\s*$")
FENCE = re.compile(r"^(`{3,}|~{3,})")
PROMPT = "lhvdbg> "
ELIDED = "..."
DEFAULT_COLUMNS = "100"
TIMEOUT = 100.0
PROVENANCE = re.compile(
    r"^<sub>Examples on this page: real output of `make docs` with QEMU (?P<version>\S+)"
    r" \(TCG; KVM where the command asks for it\)\.</sub>\s*$"
)


def provenance_line(version: str) -> str:
    """The page's last line: the QEMU the examples were generated with."""
    return (
        f"<sub>Examples on this page: real output of `make docs` with QEMU {version}"
        " (TCG; KVM where the command asks for it).</sub>"
    )


class DocsError(Exception):
    """A marker, block or run the generator cannot use (named by page and line)."""


@dataclass(frozen=True)
class Options:
    """What a marker asks for.

    ``head=N`` the first N lines; ``lines=1-5,9,20-`` those lines (1-based); ``from=RE`` /
    ``to=RE`` from the first line matching RE / up to and including the next one matching;
    ``grep=RE`` only lines matching (an output with no line matching ``from=`` shows
    nothing of itself, one with none matching ``to=`` runs to its end); ``drop=RE`` lines
    matching left out; ``cut=N`` lines longer than N columns cut with ``…``;
    ``keys=a,b.c`` (JSON output) only those keys, ``b.c`` is key ``c`` of ``b`` (of each
    item when ``b`` is a list), ``first=b:N`` only the first N items of list ``b``,
    ``item=KEY:VALUE`` only the first item of a JSON list whose KEY is VALUE;
    ``exit=N`` the expected exit status (default 0); ``needs=kvm`` only where /dev/kvm is
    usable; ``cwd=kernels`` run in the directory where the fixture kernels
    (``tests/fixtures/kernels``) are built as ``reset-kbc.elf``, ``reset-cf9.elf``,
    ``triple-fault.elf``, ``no-idt.elf``, ``timer.elf``; ``env=NAME=VALUE`` (repeatable);
    ``shell=ARGS`` a shell transcript; ``vary=RE`` text that differs run to run in this
    block (compared as ``<vary>``); ``tries=N`` the output takes one of a few forms run to
    run (where a timer interrupt lands): run up to N times, a match with any run is enough;
    ``offline`` the block starts no QEMU; ``host`` its output is this host's (tools and
    versions found): generated, never compared.
    Excerpt options apply to each command's output on its own.
    """

    head: int | None = None
    lines: str | None = None
    start: str | None = None
    stop: str | None = None
    grep: str | None = None
    drop: str | None = None
    cut: int | None = None
    keys: tuple[str, ...] = ()
    first: tuple[tuple[str, int], ...] = ()
    exit: int = 0
    needs: str | None = None
    cwd: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    shell: str | None = None
    vary: tuple[str, ...] = ()
    offline: bool = False
    tries: int = 1
    item: str | None = None
    host: bool = False


_INT_OPTIONS = {"head", "cut", "exit", "tries"}
_TEXT_OPTIONS = {"lines": "lines", "from": "start", "to": "stop", "grep": "grep",
                 "needs": "needs", "cwd": "cwd", "shell": "shell", "item": "item",
                 "drop": "drop"}  # fmt: skip


def parse_options(text: str) -> Options:
    """Parse a marker's options (``key=value`` words, shell quoting)."""
    values: dict[str, Any] = {}
    env: list[tuple[str, str]] = []
    vary: list[str] = []
    firsts: list[tuple[str, int]] = []
    for word in shlex.split(text or ""):
        key, eq, value = word.partition("=")
        if word in ("offline", "host"):
            values[word] = True
        elif not eq:
            raise DocsError(f"marker option {word!r} is not key=value")
        elif key in _INT_OPTIONS:
            try:
                values[key] = int(value)
            except ValueError:
                raise DocsError(f"marker option {key} takes a number, not {value!r}") from None
        elif key in _TEXT_OPTIONS:
            values[_TEXT_OPTIONS[key]] = value
        elif key == "keys":
            values["keys"] = tuple(k for k in value.split(",") if k)
        elif key == "first":
            path, _, count = value.rpartition(":")
            if not path or not count.isdigit():
                raise DocsError(f"marker option first takes PATH:N, not {value!r}")
            firsts.append((path, int(count)))
        elif key == "env":
            name, eq2, setting = value.partition("=")
            if not eq2:
                raise DocsError(f"marker option env takes NAME=VALUE, not {value!r}")
            env.append((name, setting))
        elif key == "vary":
            vary.append(value)
        else:
            raise DocsError(f"unknown marker option {key!r}")
    if values.get("needs") not in (None, "kvm"):
        raise DocsError(f"needs= knows only kvm, not {values['needs']!r}")
    if values.get("cwd") not in (None, "kernels"):
        raise DocsError(f"cwd= knows only kernels, not {values['cwd']!r}")
    return Options(**values, env=tuple(env), vary=tuple(vary), first=tuple(firsts))


@dataclass(frozen=True)
class Block:
    """One generated block of a page: its marker's options and the text between fences."""

    page: Path
    line: int  # 1-based line of the opening fence
    options: Options
    body: tuple[str, ...]
    begin: int  # index in the page's lines of the body's first line
    end: int  # index of the closing fence

    @property
    def name(self) -> str:
        """How a failure names the block: page, line and first command."""
        first = next(iter(self.commands()), ("", ()))[0].split("\n")[0]
        return f"{_relative(self.page)}:{self.line} ({first})"

    def commands(self) -> Iterator[tuple[str, tuple[str, ...]]]:
        """The block's commands, each with the output the page shows for it."""
        lead = PROMPT if self.options.shell is not None else "$ "
        command: str | None = None
        shown: list[str] = []
        continued = False
        for text in self.body:
            if continued and command is not None:
                command += "\n" + text
            elif text.startswith(lead):
                if command is not None:
                    yield command, tuple(shown)
                command, shown = text[len(lead) :], []
            elif command is not None:
                shown.append(text)
            continued = lead == "$ " and text.endswith("\\")
        if command is not None:
            yield command, tuple(shown)


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def parse_page(page: Path, text: str | None = None) -> list[Block]:
    """The generated blocks of a page, in order."""
    lines = (page.read_text() if text is None else text).split("\n")
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        found = MARKER.match(lines[index])
        if not found:
            index = _past_fenced_text(lines, index)
            continue
        where = f"{_relative(page)}:{index + 1}"
        fence = FENCE.match(lines[index + 1]) if index + 1 < len(lines) else None
        if not fence:
            raise DocsError(f"{where}: an example marker must come right before a ``` fence")
        try:
            options = parse_options(found.group("options") or "")
        except DocsError as exc:
            raise DocsError(f"{where}: {exc}") from None
        close = next(
            (i for i in range(index + 2, len(lines)) if lines[i].strip() == fence.group(1)), None
        )
        if close is None:
            raise DocsError(f"{where}: the example's fence is never closed")
        block = Block(page, index + 2, options, tuple(lines[index + 2 : close]), index + 2, close)
        if not any(True for _ in block.commands()):
            want = PROMPT if options.shell is not None else "$ "
            raise DocsError(f"{where}: the example has no '{want}' line")
        blocks.append(block)
        index = close + 1
    return blocks


def _past_fenced_text(lines: list[str], index: int) -> int:
    """The index after line ``index``, or after the whole fenced block it opens: a marker
    shown inside a code block (as docs/contributing.md does) is text, not a marker."""
    fence = FENCE.match(lines[index])
    if not fence:
        return index + 1
    close = next(
        (i for i in range(index + 1, len(lines)) if lines[i].strip() == fence.group(1)), None
    )
    return len(lines) if close is None else close + 1


# ---------------------------------------------------------------- normalisation

_VARYING = (
    (re.compile(r"\b\d+\.\d+ ?(?:s|ms)\b"), "<time>"),  # elapsed times: 1.2 s, 306.5 ms
    (re.compile(r"\bpid \d+\b"), "pid <n>"),
    (re.compile(r"\blog line \d+"), "log line <n>"),  # how many lines QEMU logged before
    (re.compile(r"(?:/var)?/tmp/[^\s'\"),:]+"), "<tmp>"),  # private temporary directories
)


def normalise(text: str, vary: Sequence[str] = ()) -> str:
    """The one normalisation before comparing: only what varies from run to run.

    Elapsed times with a fraction (``1.2 s``, ``306.5 ms``), process ids (``pid 123``),
    line numbers in QEMU's ``-d int`` log (``log line 219``: the boot's timer interrupts
    before it vary), temporary paths (``/tmp/...``) and a block's own ``vary=`` patterns
    become placeholders. Both the page's text and a fresh run go through it; the page keeps the
    real values.
    """
    for pattern in vary:
        text = re.sub(pattern, "<vary>", text)
    for regex, placeholder in _VARYING:
        text = regex.sub(placeholder, text)
    return text


def presentable(output: str, kernels: Path | None = None) -> list[str]:
    """A command's output as a page shows it: paths relative to the repository root,
    the fixture-kernel directory left out, no trailing spaces."""
    output = output.replace(f"{ROOT}/", "").replace(str(ROOT), ".")
    if kernels is not None:
        output = output.replace(f"{kernels}/", "")
    lines = [line.rstrip() for line in output.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


# ---------------------------------------------------------------- excerpts


def _line_numbers(spec: str, count: int) -> set[int]:
    """``1-5,9,20-`` as 0-based indices below ``count``."""
    chosen: set[int] = set()
    for part in spec.split(","):
        low, dash, high = part.partition("-")
        first = int(low) if low else 1
        last = (int(high) if high else count) if dash else first
        chosen.update(range(first - 1, min(last, count)))
    return chosen


def select_json(text: str, options: Options) -> str:
    """Keep only the ``item=`` of a JSON list, its ``keys=``, the first N items of
    ``first=`` lists."""
    data = json.loads(text)
    if options.item is not None:
        key, _, value = options.item.partition(":")
        found = [x for x in data if isinstance(x, dict) and str(x.get(key)) == value]
        if not found:
            raise DocsError(f"no JSON item has {key} = {value!r}")
        data = found[0]
    if options.keys:
        tree: dict[str, Any] = {}
        for path in options.keys:
            node = tree
            for part in path.split("."):
                node = node.setdefault(part, {})
        data = _pick(data, tree)
    for path, count in options.first:
        node = data
        *parents, last = path.split(".")
        for part in parents:
            node = node[part]
        node[last] = node[last][:count]
    return json.dumps(data, indent=2)


def _pick(value: Any, tree: dict[str, Any]) -> Any:
    if not tree:
        return value
    if isinstance(value, list):
        return [_pick(item, tree) for item in value]
    if isinstance(value, dict):
        return {key: _pick(value[key], sub) for key, sub in tree.items() if key in value}
    return value


def excerpt(lines: list[str], options: Options) -> list[str]:
    """Cut one command's output down as the options ask; ``...`` marks each gap."""
    keep = list(range(len(lines)))
    if options.start is not None:
        begin = next((i for i in keep if re.search(options.start, lines[i])), None)
        keep = [i for i in keep if begin is not None and i >= begin]
    if options.stop is not None:
        end = next((i for i in keep if re.search(options.stop, lines[i])), None)
        keep = [i for i in keep if end is None or i <= end]
    if options.lines is not None:
        chosen = _line_numbers(options.lines, len(lines))
        keep = [i for i in keep if i in chosen]
    if options.grep is not None:
        keep = [i for i in keep if re.search(options.grep, lines[i])]
    if options.drop is not None:
        keep = [i for i in keep if not re.search(options.drop, lines[i])]
    if options.head is not None:
        keep = keep[: options.head]
    out: list[str] = []
    previous = -1
    for i in keep:
        if i != previous + 1:
            out.append(ELIDED)
        out.append(_cut(lines[i], options.cut))
        previous = i
    if previous != len(lines) - 1:
        out.append(ELIDED)
    return out


def _cut(line: str, width: int | None) -> str:
    return line if width is None or len(line) <= width else line[: width - 1] + "…"


# ---------------------------------------------------------------- running


@dataclass
class Runner:
    """Runs blocks' commands; builds the fixture kernels once, on first need."""

    _kernels: Path | None = None
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    def kernels(self) -> Path:
        """The directory holding the fixture kernels, built on first use."""
        if self._kernels is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="lhvdbg-docs-")
            where = Path(self._tmp.name)
            for method, name in ((RESET_KBC, "reset-kbc"), (RESET_CF9, "reset-cf9"),
                                 (TRIPLE_FAULT, "triple-fault"), (NO_IDT, "no-idt")):  # fmt: skip
                reset_kernel(where, method).rename(where / f"{name}.elf")
            build_kernel("timer-kernel.S", where, "timer")
            for leftover in where.glob("*.o"):
                leftover.unlink()
            self._kernels = where
        return self._kernels

    def close(self) -> None:
        """Remove the fixture kernels."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp, self._kernels = None, None

    def environment(self, options: Options, state: Path) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("FORCE_COLOR", None)
        env.update(
            PATH=f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            NO_COLOR="1",
            COLUMNS=DEFAULT_COLUMNS,
            TERM="dumb",
            XDG_STATE_HOME=str(state),
        )
        env.update(dict(options.env))
        return env

    def run(self, argv: list[str], options: Options) -> tuple[list[str], int]:
        """Run one command; its presentable output and exit status."""
        kernels = self.kernels() if options.cwd == "kernels" else None
        with tempfile.TemporaryDirectory(prefix="lhvdbg-docs-state-") as state:
            child = subprocess.Popen(
                argv,
                cwd=kernels or ROOT,
                env=self.environment(options, Path(state)),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,  # its own process group: all of it ends on a timeout
            )
            try:
                output, _ = child.communicate(timeout=TIMEOUT)
            except subprocess.TimeoutExpired as exc:
                os.killpg(child.pid, signal.SIGTERM)  # lhvdbg ends its QEMU and gdb on TERM
                try:
                    child.communicate(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(child.pid, signal.SIGKILL)
                    child.communicate()
                raise DocsError(f"{argv!r} did not end within {TIMEOUT:.0f} s") from exc
        return presentable(output, kernels), child.returncode

    def generate(self, block: Block) -> list[str]:
        """The block's body as the program prints it now."""
        options = block.options
        if options.shell is not None:
            return self._transcript(block)
        body: list[str] = []
        previous_gap = False
        for command, shown in block.commands():
            if body and previous_gap:
                body.append("")  # the page's own blank line between commands
            previous_gap = bool(shown) and not shown[-1].strip()
            lines, status = self.run(["bash", "-c", command], options)
            if status != options.exit:
                raise DocsError(_unexpected(block, command, status, lines))
            if options.keys or options.first or options.item:
                lines = select_json("\n".join(lines), options).split("\n")
            body += [*f"$ {command}".split("\n"), *excerpt(lines, options)]
            if status:
                body.append(f"# exit status {status}")
        return body

    def _transcript(self, block: Block) -> list[str]:
        options = block.options
        typed = [command for command, _ in block.commands()]
        argv = ["lhvdbg", "shell", *shlex.split(options.shell or "")]
        for command in typed:
            argv += ["-x", command]
        lines, status = self.run(argv, options)
        if status != options.exit:
            raise DocsError(_unexpected(block, shlex.join(argv), status, lines))
        starts = [i for i, text in enumerate(lines) if text.startswith(PROMPT)]
        if len(starts) != len(typed):
            raise DocsError(f"{block.name}: the shell echoed {len(starts)} of {len(typed)} "
                            "commands:\n" + "\n".join(lines))  # fmt: skip
        body: list[str] = []
        for n, begin in enumerate(starts):
            end = starts[n + 1] if n + 1 < len(starts) else len(lines)
            body += [lines[begin], *excerpt(lines[begin + 1 : end], options)]
        if status:
            body.append(f"# exit status {status}")
        return body


def _unexpected(block: Block, command: str, status: int, lines: list[str]) -> str:
    tail = "\n".join(lines[-15:])
    return (f"{block.name}: `{command}` exited {status}, the marker expects "
            f"exit={block.options.exit}; its output ends:\n{tail}")  # fmt: skip


@cache
def kvm_usable() -> bool:
    """Whether /dev/kvm can be opened read-write here."""
    return _kvm_usable()


def qemu_version() -> str | None:
    """The version of the QEMU the commands run: ``$LHVDBG_QEMU``, else the one on PATH."""
    qemu = os.environ.get("LHVDBG_QEMU") or "qemu-system-x86_64"
    try:
        done = subprocess.run([qemu, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"version (\d+\.\d+\.\d+)", done.stdout)
    return found.group(1) if found else None


def page_version(text: str) -> str | None:
    """The QEMU version a page's examples were generated with (its provenance line)."""
    for line in text.split("\n"):
        if found := PROVENANCE.match(line):
            return found.group("version")
    return None


def why_not_compared(block: Block, page_qemu: str | None, running_qemu: str | None) -> str:
    """Why a block cannot be re-run and compared here ('' when it can)."""
    if block.options.host:
        return f"{block.name} shows this host's tools and versions: generated, not compared"
    if block.options.needs == "kvm" and not kvm_usable():
        return f"{block.name} needs KVM and /dev/kvm is not usable here"
    if not block.options.offline and page_qemu != running_qemu:
        return (f"{block.name} was generated on QEMU {page_qemu}; this is QEMU "
                f"{running_qemu} (quirks differ by version)")  # fmt: skip
    return ""


def fresh_run(runner: Runner, block: Block) -> tuple[list[str], bool]:
    """Run the block up to ``tries=`` times until it matches the page: the output, and
    whether it matches. When none does, the output is the form the runs gave most often
    (the first of those), so a page shows the common case."""
    runs: list[list[str]] = []
    for _attempt in range(max(1, block.options.tries)):
        fresh = runner.generate(block)
        if not differs(block, fresh):
            return fresh, True
        runs.append(fresh)
    forms = Counter(normalise("\n".join(run), block.options.vary) for run in runs)
    common = forms.most_common(1)[0][0]
    return next(r for r in runs if normalise("\n".join(r), block.options.vary) == common), False


def difference(block: Block, fresh: list[str]) -> str:
    """The page's block against a fresh run, normalised, as a unified diff."""
    vary = block.options.vary
    return "\n".join(
        difflib.unified_diff(
            normalise("\n".join(block.body), vary).split("\n"),
            normalise("\n".join(fresh), vary).split("\n"),
            "page",
            "now",
            lineterm="",
        )
    )


def differs(block: Block, fresh: list[str]) -> bool:
    """Whether the page's block and a fresh run differ after normalisation."""
    vary = block.options.vary
    return normalise("\n".join(block.body), vary) != normalise("\n".join(fresh), vary)


# ---------------------------------------------------------------- pages


def pages() -> list[Path]:
    """Every page that may hold generated examples: README.md and docs/**.md."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def update_page(page: Path, runner: Runner, version: str, *, check: bool) -> list[str]:
    """Regenerate a page's blocks (unless ``check``); the messages about what changed.

    A block whose fresh output equals the page's after normalisation is left as it is, so a
    rerun changes only what the program prints differently.
    """
    text = page.read_text()
    blocks = parse_page(page, text)
    if not blocks:
        return []
    lines = text.split("\n")
    messages: list[str] = []
    replacements: list[tuple[Block, list[str]]] = []
    for block in blocks:
        if block.options.needs == "kvm" and not kvm_usable():
            messages.append(f"{block.name}: kept as it is (needs KVM; /dev/kvm not usable)")
            continue
        try:
            fresh, same = fresh_run(runner, block)
        except DocsError as exc:
            messages.append(f"error: {exc}")
            continue
        if not same:
            if check:
                messages.append(f"{block.name}: differs\n{difference(block, fresh)}")
            else:
                messages.append(f"{block.name}: regenerated")
            replacements.append((block, fresh))
    for block, fresh in reversed(replacements):
        lines[block.begin : block.end] = fresh
    if not check:
        lines = _with_provenance(lines, version)
        new = "\n".join(lines)
        if new != text:
            page.write_text(new)
    elif page_version(text) != version:
        messages.append(f"{_relative(page)}: generated on QEMU {page_version(text)}, not {version}")
    return messages


def _with_provenance(lines: list[str], version: str) -> list[str]:
    kept = [line for line in lines if not PROVENANCE.match(line)]
    while kept and not kept[-1].strip():
        kept.pop()
    return [*kept, "", provenance_line(version), ""]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.docs_examples", description=__doc__.split("\n")[0]
    )
    parser.add_argument("pages", nargs="*", type=Path, help="pages (default: README and docs/)")
    parser.add_argument("--check", action="store_true", help="report drift, write nothing")
    args = parser.parse_args(argv)
    version = qemu_version()
    if version is None:
        print("make docs: no QEMU found (qemu-system-x86_64 or $LHVDBG_QEMU)", file=sys.stderr)
        return 1
    runner = Runner()
    failed = False
    try:
        for page in args.pages or pages():
            try:
                for message in update_page(page.resolve(), runner, version, check=args.check):
                    print(message)
                    failed |= message.startswith("error") or (args.check and "kept" not in message)
            except DocsError as exc:
                print(f"make docs: {exc}", file=sys.stderr)
                failed = True
    finally:
        runner.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
