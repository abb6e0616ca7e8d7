"""The generic layout engine: hardware structures declared once, as data.

A :class:`Layout` is a list of :class:`Field` s over a little-endian bit string. Each field
has a name, one or more bit ranges (``pieces``, least-significant piece first, so a
descriptor's split base is *one* field), a one-line meaning and an optional enum. From that
one declaration come:

* ``Layout.decode(int | bytes) -> Decoded`` (frozen; values are plain ints),
* ``Layout.encode(**values) -> int`` and ``Layout.encode_bytes(**values) -> bytes``
  (fixtures for tests),
* rendering metadata (``Field.bits_text``, ``Field.meaning``, ``Decoded.name_of``),
* :func:`diff` between two decoded values.

Every function that builds a layout is entered in the catalogue where it is declared
(:func:`catalogued`, with the argument tuples of each form it builds), so
:func:`lhvdbg.x86.catalog.all_layouts` cannot miss one; a unit test checks that every
function of ``lhvdbg.x86`` that calls ``Layout(...)`` carries the decorator.

Enums never raise: an unlisted value reads ``unknown (0x..)``. A field's enum may depend on
another field of the same structure (``enum_on``), e.g. a descriptor's type names depend on
its S bit. Layouts that differ between legacy/compatibility and IA-32e mode are built by
functions taking the mode (see :func:`normalize_mode`), not copied.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, TypeVar

from lhvdbg.errors import DecodeError

TableMode = Literal["legacy", "ia32e"]
#: Whole values each layout keeps decoded (then it starts again): more than a GDT and an
#: IDT hold, a few hundred KiB at most.
DECODED_KEPT = 4096

_IA32E_NAMES = frozenset({"ia32e", "long", "compat", "64", "64-bit", "amd64"})
_LEGACY_NAMES = frozenset({"legacy", "protected", "real", "vm86", "32", "32-bit", "i386"})


def normalize_mode(mode: str) -> TableMode:
    """Map a CPU mode (``long``, ``compat``, ``protected``, ...) to the table format.

    IA-32e mode (64-bit and compatibility sub-modes) uses the 16-byte system descriptors,
    16-byte IDT gates and the 64-bit TSS; every other mode the legacy forms (SDM Vol. 3A
    §2.2, §6.14).
    """
    key = mode.lower()
    if key in _IA32E_NAMES:
        return "ia32e"
    if key in _LEGACY_NAMES:
        return "legacy"
    raise DecodeError(f"unknown CPU mode {mode!r} (expected long or protected)")


def describe_enum(enum: Mapping[int, str], value: int) -> str:
    """The enum name of ``value``, or ``unknown (0x..)``; never raises."""
    name = enum.get(value)
    return name if name is not None else f"unknown ({value:#x})"


@dataclass(frozen=True)
class Field:
    """One named field: bit ranges (inclusive, lsb piece first), meaning, optional enum.

    ``shift`` places the value: an address field over bits 12-51 with ``shift=12`` decodes
    to the address itself (low 12 bits zero). ``enum_on`` names another field whose value
    selects the enum from ``enums``. ``reserved`` marks must-be-zero / ignored bits.
    """

    name: str
    pieces: tuple[tuple[int, int], ...]
    meaning: str
    enum: Mapping[int, str] | None = field(default=None, compare=False)
    shift: int = 0
    reserved: bool = False
    enum_on: str | None = None
    enums: Mapping[int, Mapping[int, str]] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        # extract's plan, made once: (lo, mask, position in the value) per piece
        plan, pos = [], 0
        for lo, hi in self.pieces:
            plan.append((lo, (1 << (hi - lo + 1)) - 1, pos))
            pos += hi - lo + 1
        object.__setattr__(self, "_plan", tuple(plan))

    @property
    def width(self) -> int:
        """Total number of bits."""
        return sum(hi - lo + 1 for lo, hi in self.pieces)

    @property
    def is_flag(self) -> bool:
        """A one-bit field without an enum."""
        return self.width == 1 and self.enum is None and self.enum_on is None

    @property
    def has_enum(self) -> bool:
        """Whether values have names."""
        return self.enum is not None or self.enum_on is not None

    @property
    def mask(self) -> int:
        """The field's bits within the raw value."""
        m = 0
        for lo, hi in self.pieces:
            m |= ((1 << (hi - lo + 1)) - 1) << lo
        return m

    @property
    def top_bit(self) -> int:
        """The highest raw bit the field uses."""
        return max(hi for _, hi in self.pieces)

    @property
    def bits_text(self) -> str:
        """The bit ranges as text: ``47`` or ``16-39,56-63``."""
        return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.pieces)

    @property
    def max_value(self) -> int:
        """The largest value the field can hold (after ``shift``)."""
        return ((1 << self.width) - 1) << self.shift

    def extract(self, raw: int) -> int:
        """The field's value in ``raw`` (by the plan made at declaration: an IDT's 256
        gates are decoded per view and per check)."""
        value = 0
        plan: tuple[tuple[int, int, int], ...] = self.__dict__["_plan"]
        for lo, mask, pos in plan:
            value |= ((raw >> lo) & mask) << pos
        return value << self.shift

    def insert(self, raw: int, value: int) -> int:
        """``raw`` with this field set to ``value`` (DecodeError if it does not fit)."""
        if value < 0 or value > self.max_value or value & ((1 << self.shift) - 1):
            raise DecodeError(
                f"value {value:#x} does not fit field {self.name} (bits {self.bits_text})"
            )
        value >>= self.shift
        for lo, hi in self.pieces:
            n = hi - lo + 1
            raw = (raw & ~(((1 << n) - 1) << lo)) | ((value & ((1 << n) - 1)) << lo)
            value >>= n
        return raw

    def enum_for(self, values: Mapping[str, int]) -> Mapping[int, str] | None:
        """The enum that applies given the other fields' ``values``."""
        if self.enum_on is not None and self.enums is not None:
            selector = values.get(self.enum_on)
            if selector is not None and selector in self.enums:
                return self.enums[selector]
        return self.enum

    def describe(self, value: int, values: Mapping[str, int] | None = None) -> str:
        """``value`` as text: its enum name, ``0``/``1`` for a flag, hex otherwise."""
        enum = self.enum_for(values or {})
        if enum is not None:
            return describe_enum(enum, value)
        if self.width == 1:
            return str(value)
        return f"{value:#x}"


def bit(name: str, n: int, meaning: str, *, reserved: bool = False) -> Field:
    """A one-bit field."""
    return Field(name, ((n, n),), meaning, reserved=reserved)


def bits(
    name: str,
    lo: int,
    hi: int,
    meaning: str,
    *,
    enum: Mapping[int, str] | None = None,
    shift: int = 0,
    reserved: bool = False,
) -> Field:
    """A field over one contiguous bit range ``lo..hi`` (inclusive)."""
    return Field(name, ((lo, hi),), meaning, enum=enum, shift=shift, reserved=reserved)


@dataclass(frozen=True, eq=False)
class Layout:
    """A hardware structure: fields over ``size_bits`` little-endian bits.

    ``doc`` says what it is and cites the Intel SDM (volume, section); ``mode`` is the
    table mode it belongs to when it differs between modes.
    """

    name: str
    size_bits: int
    fields: tuple[Field, ...]
    doc: str
    mode: TableMode | None = None

    def __post_init__(self) -> None:
        seen = 0
        names: set[str] = set()
        for f in self.fields:
            if f.name in names:
                raise ValueError(f"layout {self.name}: field {f.name} declared twice")
            names.add(f.name)
            if f.top_bit >= self.size_bits or any(lo > hi or lo < 0 for lo, hi in f.pieces):
                raise ValueError(f"layout {self.name}: field {f.name} outside the layout")
            if seen & f.mask:
                raise ValueError(f"layout {self.name}: field {f.name} overlaps another")
            seen |= f.mask
        for f in self.fields:
            if f.enum_on is not None and f.enum_on not in names:
                raise ValueError(f"layout {self.name}: {f.name} enum_on an unknown field")
        object.__setattr__(self, "_by_name", {f.name: f for f in self.fields})
        object.__setattr__(self, "_declared", seen)
        object.__setattr__(self, "_decoded", {})  # raw -> Decoded (see decode)

    @property
    def size_bytes(self) -> int:
        """Size in bytes (rounded up)."""
        return (self.size_bits + 7) // 8

    @property
    def declared_mask(self) -> int:
        """Every bit some field covers."""
        declared: int = self.__dict__["_declared"]
        return declared

    @property
    def field_names(self) -> tuple[str, ...]:
        """Field names in declaration order."""
        return tuple(f.name for f in self.fields)

    def field(self, name: str) -> Field:
        """The field called ``name`` (DecodeError if none)."""
        by_name: dict[str, Field] = self.__dict__["_by_name"]
        try:
            return by_name[name]
        except KeyError:
            raise DecodeError(f"{self.name} has no field {name!r}") from None

    def has_field(self, name: str) -> bool:
        """Whether a field called ``name`` exists."""
        return name in self.__dict__["_by_name"]

    def decode(self, value: int | bytes, *, partial: bool = False) -> Decoded:
        """Decode an integer or little-endian bytes.

        With ``partial=True`` a shorter byte string is accepted; fields not wholly inside it
        are left out of ``values`` and listed in ``Decoded.missing``.
        """
        missing: tuple[str, ...] = ()
        if isinstance(value, bytes | bytearray | memoryview):
            data = bytes(value)
            if len(data) != self.size_bytes:
                if not (partial and len(data) < self.size_bytes):
                    raise DecodeError(f"{self.name} needs {self.size_bytes} bytes, got {len(data)}")
                have = len(data) * 8
                missing = tuple(f.name for f in self.fields if f.top_bit >= have)
            raw = int.from_bytes(data, "little")
        elif isinstance(value, int) and not isinstance(value, bool):
            raw = value
            if raw < 0 or raw >> self.size_bits:
                raise DecodeError(f"{value:#x} does not fit {self.name} ({self.size_bits} bits)")
        else:
            raise DecodeError(f"cannot decode {type(value).__name__} as {self.name}")
        if missing:
            return Decoded(self, raw, MappingProxyType(self._values(raw, missing)), missing)
        # a whole value: kept (Decoded is immutable), as the same few descriptors and
        # gates are decoded again and again (each gate's code segment, an IDT per view)
        known: dict[int, Decoded] = self.__dict__["_decoded"]
        decoded = known.get(raw)
        if decoded is None:
            if len(known) >= DECODED_KEPT:
                known.clear()
            decoded = known[raw] = Decoded(self, raw, MappingProxyType(self._values(raw)))
        return decoded

    def _values(self, raw: int, missing: tuple[str, ...] = ()) -> dict[str, int]:
        """Each field's value in ``raw``, but those in ``missing``."""
        return {f.name: f.extract(raw) for f in self.fields if f.name not in missing}

    def encode(self, **values: int) -> int:
        """The raw integer with the given fields set (others zero)."""
        raw = 0
        for name, value in values.items():
            raw = self.field(name).insert(raw, value)
        return raw

    def encode_bytes(self, **values: int) -> bytes:
        """Like :meth:`encode`, as little-endian bytes of the layout's size."""
        return self.to_bytes(self.encode(**values))

    def to_bytes(self, raw: int) -> bytes:
        """``raw`` as little-endian bytes of the layout's size."""
        return raw.to_bytes(self.size_bytes, "little")


@dataclass(frozen=True, eq=False)
class Decoded:
    """A decoded value: the layout, the raw integer and each field's integer value.

    Fields read as attributes (``d.base``) or from ``values``. ``missing`` lists fields
    not covered by a partial decode. Equality compares layout identity and raw value.
    """

    layout: Layout
    raw: int
    values: Mapping[str, int]
    missing: tuple[str, ...] = ()

    def __getattr__(self, name: str) -> int:
        if name.startswith("__"):
            raise AttributeError(name)
        values = self.__dict__.get("values")
        if values is not None and name in values:
            value: int = values[name]
            return value
        raise AttributeError(f"{type(self).__name__} of {self.layout.name} has no field {name}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Decoded):
            return NotImplemented
        return (
            self.layout is other.layout and self.raw == other.raw and self.missing == other.missing
        )

    def __hash__(self) -> int:
        return hash((id(self.layout), self.raw, self.missing))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v:#x}" for k, v in self.values.items())
        return f"Decoded({self.layout.name}: {inner})"

    def get(self, name: str, default: int | None = None) -> int | None:
        """A field's value, or ``default`` if the field is absent or missing."""
        return self.values.get(name, default)

    def name_of(self, name: str) -> str | None:
        """The enum name of a field's value (``unknown (0x..)`` fallback), or None."""
        f = self.layout.field(name)
        enum = f.enum_for(self.values)
        if enum is None or name not in self.values:
            return None
        return describe_enum(enum, self.values[name])

    def describe(self, name: str) -> str:
        """A field's value as text (enum name, flag, or hex); ``-`` if missing."""
        if name not in self.values:
            return "-"
        return self.layout.field(name).describe(self.values[name], self.values)

    @property
    def unknown_bits(self) -> int:
        """Set bits of the raw value that no field declares."""
        return self.raw & ~self.layout.declared_mask

    def to_dict(self) -> dict[str, int | str]:
        """Field values as ints, plus ``<field>_name`` for fields with an enum."""
        out: dict[str, int | str] = {}
        for f in self.layout.fields:
            if f.name not in self.values:
                continue
            out[f.name] = self.values[f.name]
            name = self.name_of(f.name)
            if name is not None:
                out[f"{f.name}_name"] = name
        return out

    def to_bytes(self) -> bytes:
        """The raw value as little-endian bytes of the layout's size."""
        return self.layout.to_bytes(self.raw)

    def replace(self, **changes: int) -> Decoded:
        """A copy with some fields changed."""
        raw = self.raw
        for name, value in changes.items():
            raw = self.layout.field(name).insert(raw, value)
        return self.layout.decode(raw)


@dataclass(frozen=True)
class FieldChange:
    """One field that differs between two decoded values (None: absent on that side)."""

    name: str
    old: int | None
    new: int | None
    old_text: str
    new_text: str


def diff(a: Decoded, b: Decoded) -> list[FieldChange]:
    """Fields whose values differ, in ``a``'s declaration order then ``b``'s extras."""
    changes: list[FieldChange] = []
    names = list(a.layout.field_names)
    names += [n for n in b.layout.field_names if n not in names]
    for name in names:
        old, new = a.values.get(name), b.values.get(name)
        if old != new:
            changes.append(
                FieldChange(
                    name,
                    old,
                    new,
                    a.describe(name) if old is not None else "-",
                    b.describe(name) if new is not None else "-",
                )
            )
    return changes


LayoutFactory = TypeVar("LayoutFactory", bound=Callable[..., Layout])
_CATALOGUE: list[tuple[Callable[..., Layout], tuple[tuple[object, ...], ...]]] = []


def catalogued(*forms: tuple[object, ...]) -> Callable[[LayoutFactory], LayoutFactory]:
    """Enter a layout factory in the catalogue at its declaration. ``forms`` are the
    argument tuples of each layout it builds (none: the one form without arguments)."""

    def enter(factory: LayoutFactory) -> LayoutFactory:
        _CATALOGUE.append((factory, forms or ((),)))
        return factory

    return enter


def catalogued_layouts() -> list[Layout]:
    """Each form of each factory entered so far, in declaration order (only the modules
    already imported have entered theirs: :mod:`lhvdbg.x86.catalog` imports them all)."""
    return [factory(*args) for factory, forms in _CATALOGUE for args in forms]
