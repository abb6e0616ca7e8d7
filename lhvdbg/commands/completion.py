"""``lhvdbg completion bash|zsh``: a shell completion script made from the one registry.

The script knows every CLI command (and alias), each command's options, which options take
a value, the choices of options and positionals, where a file name is expected, and the
sub-commands of ``scenario``: all read from the commands' own argparse configuration, so
it cannot drift from what the program accepts. Install with
``source <(lhvdbg completion bash)`` (bash) or ``source <(lhvdbg completion zsh)`` (zsh).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from lhvdbg.commands.registry import Context, command, load_all

__all__ = ["GLOBAL_OPTIONS", "CommandSpec", "OptionSpec", "command_specs"]

#: The options ``lhvdbg`` itself takes before the command (``lhvdbg.cli.build_parser``).
GLOBAL_OPTIONS = ("-h", "--help", "--version", "-v", "--verbose", "--no-color")
SHELLS = ("bash", "zsh")
_FILE_WORDS = ("FILE", "PATH", "ELF", "ISO", "DIR")


@dataclass(frozen=True)
class OptionSpec:
    """One option as completion sees it: its spellings, whether it takes a value, the
    values to offer (choices, firmware variants, reference names), and whether the value
    may be a file name."""

    strings: tuple[str, ...]
    takes_value: bool
    choices: tuple[str, ...] = ()
    is_file: bool = False


@dataclass
class CommandSpec:
    """One command (or sub-command): its words (``("scenario", "run")``), options,
    sub-commands (name or alias -> name), the choices of its positionals, and whether a
    positional is a file."""

    words: tuple[str, ...]
    options: list[OptionSpec] = field(default_factory=list)
    subcommands: dict[str, str] = field(default_factory=dict)
    positional_choices: list[str] = field(default_factory=list)
    positional_files: bool = False

    @property
    def key(self) -> str:
        """``lhvdbg`` and the words, joined by ``/`` (``lhvdbg/scenario/run``): a key that
        bash and zsh read alike, unquoted."""
        return "/".join(("lhvdbg", *self.words))


def _is_file(action: argparse.Action) -> bool:
    metavar = action.metavar if isinstance(action.metavar, str) else ""
    return action.type is Path or any(word in metavar.upper() for word in _FILE_WORDS)


def _variants() -> tuple[str, ...]:
    """The bundled firmware's variants (every arch), from its Makefile; none if unreadable."""
    from lhvdbg.errors import LhvdbgError
    from lhvdbg.machine.launch import firmware_dir
    from lhvdbg.state.firmware_facts import firmware_variants

    try:
        found = firmware_variants(firmware_dir() / "Makefile")
    except (LhvdbgError, OSError):
        return ()
    return tuple(dict.fromkeys(v for names in found.values() for v in names))


def _words_for(action: argparse.Action) -> tuple[str, ...]:
    """The values to offer for ``action``: its choices, the firmware variants for
    ``--variant``, the reference names where a reference is accepted."""
    if action.choices:
        return tuple(str(c) for c in action.choices)
    if action.dest == "variant":
        return _variants()
    text = f"{action.metavar if isinstance(action.metavar, str) else ''} {action.help or ''}"
    if "pebbles" in text:
        from lhvdbg.state.references import REFERENCE_NAMES

        return REFERENCE_NAMES
    return ()


def _spec(words: tuple[str, ...], parser: argparse.ArgumentParser) -> list[CommandSpec]:
    """The spec of ``parser`` and of its sub-parsers (depth first)."""
    spec = CommandSpec(words)
    out = [spec]
    for action in parser._actions:  # argparse's declared actions: the one public-enough view
        if action.help == argparse.SUPPRESS:
            continue
        choices = _words_for(action)
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                spec.subcommands[name] = sub.prog.split()[-1]
            for name, sub in action.choices.items():
                if sub.prog.split()[-1] == name:  # once per sub-command, not per alias
                    out += _spec((*words, name), sub)
            continue
        if action.option_strings:
            spec.options.append(
                OptionSpec(
                    tuple(action.option_strings),
                    takes_value=action.nargs != 0,
                    choices=choices,
                    is_file=_is_file(action),
                )
            )
        else:
            spec.positional_choices += choices
            spec.positional_files = spec.positional_files or _is_file(action)
    return out


def command_specs() -> list[CommandSpec]:
    """The top level (``lhvdbg`` with its global options and commands), then each CLI
    command and its sub-commands, from the registry."""
    registry = load_all()
    top = CommandSpec(())
    top.options.append(OptionSpec(GLOBAL_OPTIONS, takes_value=False))
    specs = [top]
    for cmd in registry.offered_in("cli"):
        for name in (cmd.name, *cmd.aliases):
            top.subcommands[name] = cmd.name
        parser = argparse.ArgumentParser(prog=f"lhvdbg {cmd.name}", add_help=True)
        cmd.configure_parser(parser)
        specs += _spec((cmd.name,), parser)
    return specs


def _assign(array: str, key: str, value: str) -> str:
    import shlex

    if shlex.quote(key) != key:  # zsh keeps quotes in a subscript: keys go unquoted
        raise ValueError(f"completion key needs quoting: {key!r}")
    return f"{array}[{key}]={shlex.quote(value)}"


def _words(values: list[str] | tuple[str, ...]) -> str:
    return " ".join(dict.fromkeys(values))


def _padded(values: list[str]) -> str:
    """`` a b `` so that bash can test membership with ``*" $word "*``."""
    return f" {_words(values)} " if values else ""


def _tables(specs: list[CommandSpec]) -> list[str]:
    """The bash associative arrays the completion function reads, one entry a line."""
    lines = [
        "declare -gA _lhvdbg_sub _lhvdbg_alias _lhvdbg_opts _lhvdbg_valued _lhvdbg_files "
        "_lhvdbg_choices _lhvdbg_pos _lhvdbg_posfiles"
    ]
    for spec in specs:
        key = spec.key
        options = [s for o in spec.options for s in o.strings]
        valued = [s for o in spec.options if o.takes_value for s in o.strings]
        files = [s for o in spec.options if o.is_file for s in o.strings]
        if spec.subcommands:
            lines.append(_assign("_lhvdbg_sub", key, _words(list(spec.subcommands))))
            for alias, name in spec.subcommands.items():
                if alias != name:
                    lines.append(_assign("_lhvdbg_alias", f"{key}/{alias}", f"{key}/{name}"))
        lines.append(_assign("_lhvdbg_opts", key, _words(options)))
        if valued:
            lines.append(_assign("_lhvdbg_valued", key, _padded(valued)))
        if files:
            lines.append(_assign("_lhvdbg_files", key, _padded(files)))
        for option in spec.options:
            for string in option.strings if option.choices else ():
                lines.append(_assign("_lhvdbg_choices", f"{key}/{string}", _words(option.choices)))
        if spec.positional_choices:
            lines.append(_assign("_lhvdbg_pos", key, _words(spec.positional_choices)))
        if spec.positional_files:
            lines.append(_assign("_lhvdbg_posfiles", key, "1"))
    return lines


_FUNCTION = r"""
_lhvdbg() {
    [[ -n ${ZSH_VERSION-} ]] && setopt local_options ksh_arrays  # 0-based, as in bash
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="" path=lhvdbg word next i skip=0
    (( COMP_CWORD > 0 )) && prev="${COMP_WORDS[COMP_CWORD-1]}"
    for (( i = 1; i < COMP_CWORD; i++ )); do
        word="${COMP_WORDS[i]}"
        if (( skip )); then skip=0; continue; fi
        if [[ $word == -* ]]; then
            [[ $word != *=* && ${_lhvdbg_valued[$path]} == *" $word "* ]] && skip=1
            continue
        fi
        if [[ " ${_lhvdbg_sub[$path]} " == *" $word "* ]]; then
            next="$path/$word"
            path="${_lhvdbg_alias[$next]:-$next}"
        fi
    done
    COMPREPLY=()
    if (( COMP_CWORD > 1 )) && [[ ${_lhvdbg_valued[$path]} == *" $prev "* ]]; then
        if [[ -n ${_lhvdbg_choices[$path/$prev]} ]]; then
            COMPREPLY=( $(compgen -W "${_lhvdbg_choices[$path/$prev]}" -- "$cur") )
        fi
        if [[ ${_lhvdbg_files[$path]} == *" $prev "* ]]; then
            compopt -o filenames 2>/dev/null
            COMPREPLY+=( $(compgen -f -- "$cur") )
        fi
        return 0
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=( $(compgen -W "${_lhvdbg_opts[$path]}" -- "$cur") )
        return 0
    fi
    COMPREPLY=( $(compgen -W "${_lhvdbg_sub[$path]} ${_lhvdbg_pos[$path]}" -- "$cur") )
    if [[ -n ${_lhvdbg_posfiles[$path]} ]]; then
        compopt -o filenames 2>/dev/null
        COMPREPLY+=( $(compgen -f -- "$cur") )
    fi
    return 0
}
complete -F _lhvdbg lhvdbg
"""


def bash_script(specs: list[CommandSpec]) -> str:
    """The bash completion script: the tables, then the function that reads them."""
    head = "# lhvdbg completion for bash: source <(lhvdbg completion bash)\n"
    return head + "\n".join(_tables(specs)) + "\n" + _FUNCTION.lstrip("\n")


def zsh_script(specs: list[CommandSpec]) -> str:
    """The zsh script: zsh's bash-completion emulation running the same function."""
    head = (
        "# lhvdbg completion for zsh: source <(lhvdbg completion zsh)\n"
        "(( $+functions[compdef] )) || { autoload -U +X compinit && compinit -i; }\n"
        "autoload -U +X bashcompinit && bashcompinit\n"
    )
    return head + bash_script(specs).split("\n", 1)[1]


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", choices=SHELLS, help="the shell to complete in")


@command(
    "completion",
    "print a bash or zsh completion script (source <(lhvdbg completion bash))",
    configure=_configure,
    category="general",
    where={"cli"},
    json=None,
)
def run(args: argparse.Namespace, ctx: Context) -> int:
    """Print the script for ``args.shell``."""
    specs = command_specs()
    script = bash_script(specs) if args.shell == "bash" else zsh_script(specs)
    ctx.stdout.write(script)
    return 0
