"""One row of the command index (``commands/index.py``): what the CLI knows of a command
before importing its module. Imports nothing (``lhvdbg --help`` reads only this and the
index)."""

from __future__ import annotations


class IndexEntry:
    """What the CLI knows of a command before importing it (``commands/index.py``)."""

    __slots__ = ("aliases", "category", "module", "name", "summary", "where")

    def __init__(
        self,
        name: str,
        module: str,
        summary: str,
        category: str,
        aliases: tuple[str, ...],
        where: tuple[str, ...],
    ) -> None:
        self.name = name
        self.module = module
        self.summary = summary
        self.category = category
        self.aliases = aliases
        self.where = where

    def _key(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IndexEntry) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"IndexEntry({', '.join(f'{n}={getattr(self, n)!r}' for n in self.__slots__)})"
