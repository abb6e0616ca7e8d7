"""The docs example generator (tests/docs_examples.py): markers, excerpts, normalisation,
and the pages' offline examples (no QEMU) re-run and compared on every QEMU."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.docs_examples import (
    ROOT,
    Block,
    DocsError,
    Options,
    Runner,
    difference,
    differs,
    excerpt,
    normalise,
    page_version,
    pages,
    parse_options,
    parse_page,
    presentable,
    provenance_line,
    select_json,
)

PAGE = """# a page

<!-- example: head=2 exit=1 env=COLUMNS=80 vary='at 0x[0-9a-f]+' -->
```
$ lhvdbg break-on-df --kernel /nonexistent.elf
lhvdbg: kernel not found: /nonexistent.elf
# exit status 1
```

```
$ not generated: no marker
```

<!-- example: shell="--variant good" -->
````
lhvdbg> br pit_init
breakpoint 1 at pit_init (0x1019d0)
lhvdbg> p $rsp
````
"""


def test_options_are_parsed_with_shell_quoting() -> None:
    options = parse_options(
        "head=2 exit=1 env=COLUMNS=80 env=A=b=c grep='^verdict|^note' cwd=kernels "
        "first=chain:2 keys=outcome,chain.vector offline tries=5 host"
    )
    assert options.host
    assert options.tries == 5
    assert options.head == 2 and options.exit == 1
    assert options.env == (("COLUMNS", "80"), ("A", "b=c"))
    assert options.grep == "^verdict|^note"
    assert options.cwd == "kernels" and options.offline
    assert options.first == (("chain", 2),)
    assert options.keys == ("outcome", "chain.vector")
    assert parse_options("") == Options()


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("head=two", "takes a number"),
        ("colour=on", "unknown marker option 'colour'"),
        ("needs=vmx", "knows only kvm"),
        ("cwd=/tmp", "knows only kernels"),
        ("first=chain", "PATH:N"),
        ("verbose", "is not key=value"),
    ],
)
def test_bad_options_are_refused(text: str, complaint: str) -> None:
    with pytest.raises(DocsError, match=complaint):
        parse_options(text)


def test_a_page_is_parsed_into_its_marked_blocks_only(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    blocks = parse_page(page, PAGE)
    assert [b.line for b in blocks] == [4, 15]
    first, shell = blocks
    assert first.options.vary == ("at 0x[0-9a-f]+",)
    assert list(first.commands()) == [
        (
            "lhvdbg break-on-df --kernel /nonexistent.elf",
            ("lhvdbg: kernel not found: /nonexistent.elf", "# exit status 1"),
        )
    ]
    assert shell.options.shell == "--variant good"
    assert list(shell.commands()) == [
        ("br pit_init", ("breakpoint 1 at pit_init (0x1019d0)",)),
        ("p $rsp", ()),
    ]
    lines = PAGE.split("\n")
    assert lines[first.begin] == "$ lhvdbg break-on-df --kernel /nonexistent.elf"
    assert lines[shell.end] == "````"


def test_a_marker_shown_inside_a_code_block_is_text(tmp_path: Path) -> None:
    page = "````\n<!-- example -->\n```\n$ lhvdbg doctor\n```\n````\n" + PAGE
    assert [b.line for b in parse_page(tmp_path / "p.md", page)] == [10, 21]


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("<!-- example -->\ntext\n", "right before a ``` fence"),
        ("<!-- example -->\n```\n$ lhvdbg doctor\n", "never closed"),
        ("<!-- example -->\n```\nlhvdbg doctor\n```\n", "no '\\$ ' line"),
        ("x\n<!-- example: head=x -->\n```\n$ a\n```\n", "p.md:2: marker option head"),
    ],
)
def test_malformed_blocks_are_named_by_page_and_line(
    tmp_path: Path, text: str, complaint: str
) -> None:
    with pytest.raises(DocsError, match=complaint):
        parse_page(tmp_path / "p.md", text)


OUTPUT = [f"line {n}" for n in range(1, 11)]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (Options(), OUTPUT),
        (Options(head=2), ["line 1", "line 2", "..."]),
        (Options(lines="2-3,9-"), ["...", "line 2", "line 3", "...", "line 9", "line 10"]),
        (Options(start="line 4", stop="line 5"), ["...", "line 4", "line 5", "..."]),
        (Options(grep="line [13]$"), ["line 1", "...", "line 3", "..."]),
        (Options(drop="line [2-9]$"), ["line 1", "...", "line 10"]),
        (Options(start="line 8", head=1), ["...", "line 8", "..."]),
        (Options(cut=4, head=1), ["lin…", "..."]),
    ],
)
def test_excerpts_mark_each_gap(options: Options, expected: list[str]) -> None:
    assert excerpt(OUTPUT, options) == expected


def test_an_excerpt_whose_patterns_never_match() -> None:
    """In a block of several commands, each command's output is cut on its own."""
    assert excerpt(OUTPUT, Options(start="verdict")) == ["..."]
    assert excerpt(OUTPUT, Options(stop="verdict", head=1)) == ["line 1", "..."]


def test_json_is_cut_down_to_the_keys_asked_for() -> None:
    text = (
        '{"outcome": "double-fault", "arch": "amd64", "chain": [{"vector": 32, "rip": 1, '
        '"name": "0x20"}, {"vector": 11, "rip": 1, "name": "#NP"}], "notes": ["\u2014"]}'
    )
    options = Options(
        keys=("outcome", "chain.vector", "chain.name", "notes"), first=(("chain", 1),)
    )
    assert select_json(text, options).split("\n") == [
        "{",
        '  "outcome": "double-fault",',
        '  "chain": [',
        "    {",
        '      "vector": 32,',
        '      "name": "0x20"',
        "    }",
        "  ],",
        '  "notes": [',
        '    "\\u2014"',
        "  ]",
        "}",
    ]


def test_one_item_of_a_json_list_is_picked_by_a_key() -> None:
    text = '[{"seq": 1, "name": "ICW1"}, {"seq": 2, "name": "ICW2"}, {"seq": 3, "name": "ICW2"}]'
    assert select_json(text, Options(item="name:ICW2", keys=("seq",))) == '{\n  "seq": 2\n}'
    with pytest.raises(DocsError, match="no JSON item has name = 'ICW9'"):
        select_json(text, Options(item="name:ICW9"))


def test_normalise_replaces_only_what_varies_run_to_run() -> None:
    text = (
        "note: interrupted (Ctrl-C) after 1.0 s, kernel entered\n"
        "median    306.5 ms  outcome\n"
        "no vector 8 within 10 s of the kernel's entry\n"
        "QEMU 7.2.22 (pid 4711) socket /tmp/lhvdbg-x1y2/qmp.sock: gone\n"
        "the CPU was at 0xfffebaa7\n"
        "- -d int log line 219: 'Servicing hardware INT=0x08'"
    )
    assert normalise(text, vary=[r"at 0x[0-9a-f]+"]).split("\n") == [
        "note: interrupted (Ctrl-C) after <time>, kernel entered",
        "median    <time>  outcome",
        "no vector 8 within 10 s of the kernel's entry",
        "QEMU 7.2.22 (pid <n>) socket <tmp>: gone",
        "the CPU was <vary>",
        "- -d int log line <n>: 'Servicing hardware INT=0x08'",
    ]


def test_output_is_shown_with_relative_paths_and_no_padding(tmp_path: Path) -> None:
    output = (
        f"kernel: {ROOT}/firmware/build/amd64/lhv-good.elf   \n"
        f"kernel: {tmp_path}/reset-kbc.elf\ncwd {ROOT}\n\n"
    )
    assert presentable(output, tmp_path) == [
        "kernel: firmware/build/amd64/lhv-good.elf",
        "kernel: reset-kbc.elf",
        "cwd .",
    ]


def test_the_provenance_line_round_trips() -> None:
    page = f"# x\n\ntext\n\n{provenance_line('7.2.22')}\n"
    assert page_version(page) == "7.2.22"
    assert page_version("# x\nQEMU 7.2.22\n") is None


def test_a_block_differs_only_beyond_normalisation(tmp_path: Path) -> None:
    (block,) = parse_page(
        tmp_path / "p.md", "<!-- example -->\n```\n$ lhvdbg x\nafter 1.0 s\n```\n"
    )
    assert not differs(block, ["$ lhvdbg x", "after 2.5 s"])
    assert differs(block, ["$ lhvdbg x", "after 2.5 s, then more"])
    assert difference(block, ["$ lhvdbg x", "after 2.5 s, then more"]).split("\n")[2:] == [
        "@@ -1,2 +1,2 @@",
        " $ lhvdbg x",
        "-after <time>",
        "+after <time>, then more",
    ]


def test_a_real_offline_command_is_generated_with_its_exit_status(tmp_path: Path) -> None:
    (block,) = parse_page(
        tmp_path / "p.md",
        "<!-- example: exit=1 -->\n```\n$ lhvdbg show /nonexistent.json\n```\n",
    )
    body = Runner().generate(block)
    assert body[0] == "$ lhvdbg show /nonexistent.json"
    assert body[1].startswith("lhvdbg: ") and "/nonexistent.json" in body[1]
    assert body[-1] == "# exit status 1"
    wrong = parse_page(tmp_path / "p.md", "<!-- example -->\n```\n$ lhvdbg show /nonexistent\n```")
    with pytest.raises(DocsError, match="exited 1, the marker expects exit=0"):
        Runner().generate(wrong[0])


OFFLINE = [
    block
    for page in pages()
    if page.exists()
    for block in parse_page(page)
    if block.options.offline and not block.options.host
]


@pytest.fixture(scope="module")
def offline_runs() -> Iterator[dict[str, list[str] | DocsError]]:
    """Every offline block run once, three at a time (each is a few lhvdbg start-ups)."""
    runner = Runner()

    def run(block: Block) -> list[str] | DocsError:
        try:
            return runner.generate(block)
        except DocsError as exc:
            return exc

    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            yield dict(zip([b.name for b in OFFLINE], pool.map(run, OFFLINE), strict=True))
    finally:
        runner.close()


@pytest.mark.parametrize("block", OFFLINE, ids=[b.name for b in OFFLINE])
def test_offline_examples_say_what_the_program_prints(
    block: Block, offline_runs: dict[str, list[str] | DocsError]
) -> None:
    """Blocks that start no QEMU (decode, show, diff of recorded snapshots, completion)."""
    fresh = offline_runs[block.name]
    if isinstance(fresh, DocsError):
        pytest.fail(str(fresh))
    assert not differs(block, fresh), (
        f"{block.name} differs from what the program prints; run make docs\n"
        + difference(block, fresh)
    )
