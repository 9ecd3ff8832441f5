"""WIT values as Python values, both ways, checked against their WIT types.

:func:`to_wire` turns a Python value into the CBOR-ready value the node expects for a WIT
type (``docs/wire.md``, "Values"); :func:`from_wire` turns what a node sent back into a
Python value of that type. Every mismatch raises :class:`ValueMismatch` naming the place
in the value (``point.x``, ``items[3]``) and the reason; the proxies report it as
:class:`~dhost.errors.BadArguments` naming the parameter.

============================  ===========================================================
WIT                           Python
============================  ===========================================================
``bool``                      ``bool``
``s8`` ... ``u64``            ``int``, its range checked (``bool`` refused)
``f32``, ``f64``              ``float`` (an ``int`` is taken too)
``char``                      ``str`` of one character
``string``                    ``str``
``list<u8>``                  ``bytes`` (``bytearray``, ``memoryview`` or a list of ints in)
``list<T>``                   ``list``
``list<T, N>``                ``list`` of exactly N items (``list<u8, N>``: ``bytes`` of N,
                              sent as an array, as nodes take fixed-length lists)
``tuple<...>``                ``tuple`` (any sequence of the right length in)
``record``                    a dataclass made for the record (a ``dict`` or any object
                              with the fields as attributes in)
``variant``                   :class:`Variant` ``(case, value)`` (a case name, or a
                              one-entry ``dict`` ``{case: value}`` in)
``enum``                      ``str``, the case name (an ``enum.Enum`` whose value is the
                              name in)
``flags``                     ``frozenset[str]`` (any iterable of names in)
``option<T>``                 ``None`` or the value; :class:`Some` ``(x)`` when ``T`` is
                              itself an option
``result<T, E>``              :class:`Ok` ``(value)`` or :class:`Err` ``(value)``
``map<K, V>``                 ``dict``
============================  ===========================================================

Names: WIT ``read-file`` is Python ``read_file`` (fields, cases and flags are also taken
in their WIT spelling).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .errors import DhostError
from .wit import (
    INTEGER_RANGES,
    EnumType,
    FlagsType,
    ListType,
    MapType,
    OptionType,
    Primitive,
    RecordType,
    ResultType,
    TupleType,
    Unsupported,
    VariantType,
    WitType,
    class_name,
    py_name,
)

__all__ = [
    "Ok",
    "Err",
    "Some",
    "Variant",
    "ValueMismatch",
    "to_wire",
    "from_wire",
    "to_plain",
    "record_class",
]

T = TypeVar("T")

_F32_MAX = 3.4028234663852886e38


@dataclass(frozen=True)
class Ok(Generic[T]):
    """The ``ok`` case of a WIT ``result``."""

    value: T = None  # type: ignore[assignment]

    def is_ok(self) -> bool:
        return True

    def is_err(self) -> bool:
        return False


@dataclass(frozen=True)
class Err(Generic[T]):
    """The ``err`` case of a WIT ``result``."""

    value: T = None  # type: ignore[assignment]

    def is_ok(self) -> bool:
        return False

    def is_err(self) -> bool:
        return True


@dataclass(frozen=True)
class Some(Generic[T]):
    """``some(value)`` of an option whose payload is itself an option (``Some(None)`` is
    not ``None``). Accepted for any option."""

    value: T


@dataclass(frozen=True)
class Variant:
    """A case of a WIT variant, with its payload (None for a case without one)."""

    case: str
    value: Any = None


class ValueMismatch(DhostError):
    """A value that does not fit its WIT type: ``path`` says where, ``reason`` what."""

    def __init__(self, reason: str, path: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = path

    def within(self, segment: str) -> ValueMismatch:
        """Prefixes the path with a field name or an index."""
        if not self.path:
            self.path = segment
        elif self.path.startswith("["):
            self.path = segment + self.path
        else:
            self.path = f"{segment}.{self.path}"
        return self

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason


def _what(value: Any) -> str:
    """A short description of a Python value, for errors."""
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


def record_class(ty: RecordType) -> type:
    """The dataclass values of record ``ty`` decode to (made once per record type)."""
    if ty.py_class is None:
        names = [py_name(f) for f, _ in ty.fields]
        cls = dataclasses.make_dataclass(class_name(ty.name) or "Record", names)
        cls.__doc__ = f"The WIT record {ty.name}."
        cls.__wit_fields__ = tuple(f for f, _ in ty.fields)  # type: ignore[attr-defined]
        cls.__module__ = "dhost.records"
        ty.py_class = cls
    return ty.py_class  # type: ignore[no-any-return]


def _case_name(given: str, known: Iterable[str], what: str) -> str:
    """The WIT name of a case (or flag) given in WIT or Python spelling."""
    known = list(known)
    if given in known:
        return given
    for name in known:
        if py_name(name) == given:
            return name
    shown = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
    raise ValueMismatch(f"no {what} `{given}` (the {what}s are: {shown})")


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueMismatch(f"expected {name} (an int), found {_what(value)}")
    try:
        n = operator.index(value)
    except TypeError:
        raise ValueMismatch(f"expected {name} (an int), found {_what(value)}") from None
    low, high = INTEGER_RANGES[name]
    if not low <= n <= high:
        raise ValueMismatch(f"{n} is out of range for {name} ({low} to {high})")
    return n


def _float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueMismatch(f"expected {name} (a float), found {_what(value)}")
    try:
        f = float(value)
    except OverflowError:
        raise ValueMismatch(f"{value} is out of range for {name}") from None
    if name == "f32" and math.isfinite(f) and abs(f) > _F32_MAX:
        raise ValueMismatch(f"{f} is out of range for f32")
    return f


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueMismatch(f"expected {what} (a str), found {_what(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueMismatch(f"{what} holds a lone surrogate, which is not Unicode text") from None
    return value


def _check_depth(depth: int) -> None:
    if depth > 100:
        raise ValueMismatch("a value nested more deeply than its type allows")


# ---------------------------------------------------------------------------------------
# Python -> wire


def to_wire(value: Any, ty: WitType, depth: int = 0) -> Any:
    """``value`` as the CBOR-ready value of WIT type ``ty`` (checked)."""
    _check_depth(depth)
    if isinstance(ty, Primitive):
        name = ty.name
        if name == "bool":
            if not isinstance(value, bool):
                raise ValueMismatch(f"expected bool, found {_what(value)}")
            return value
        if name in INTEGER_RANGES:
            return _integer(value, name)
        if name in ("f32", "f64"):
            return _float(value, name)
        if name == "char":
            s = _string(value, "char")
            if len(s) != 1:
                raise ValueMismatch(f"expected char, found text of {len(s)} characters")
            return s
        return _string(value, "string")
    if isinstance(ty, ListType):
        elem = ty.element
        is_u8 = isinstance(elem, Primitive) and elem.name == "u8"
        if is_u8 and isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
            _fixed(len(data), ty)
            # A node takes a byte string for list<u8> only: a fixed-length list is an
            # array whatever its elements (runtime/src/value.rs).
            return data if ty.length is None else list(data)
        if isinstance(value, (str, bytes, bytearray, memoryview, Mapping)) or not isinstance(
            value, Iterable
        ):
            raise ValueMismatch(f"expected {ty} (a list), found {_what(value)}")
        items = list(value)
        _fixed(len(items), ty)
        out = [_at(lambda v=v: to_wire(v, elem, depth + 1), f"[{i}]") for i, v in enumerate(items)]
        if is_u8 and out and ty.length is None:
            return bytes(out)
        return out
    if isinstance(ty, TupleType):
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
            raise ValueMismatch(f"expected {ty} (a tuple), found {_what(value)}")
        items = list(value)
        if len(items) != len(ty.items):
            raise ValueMismatch(f"expected a tuple of {len(ty.items)}, found {len(items)} items")
        return [
            _at(lambda v=v, t=t: to_wire(v, t, depth + 1), f"[{i}]")
            for i, (v, t) in enumerate(zip(items, ty.items))
        ]
    if isinstance(ty, OptionType):
        if value is None:
            return None
        inner_is_option = isinstance(ty.inner, OptionType)
        if isinstance(value, Some):
            inner = to_wire(value.value, ty.inner, depth + 1)
            return [inner] if inner_is_option else inner
        if inner_is_option:
            raise ValueMismatch(
                f"expected None or Some(...) for {ty} (an option of an option), found {_what(value)}"
            )
        return to_wire(value, ty.inner, depth + 1)
    if isinstance(ty, ResultType):
        if isinstance(value, Ok):
            case, payload, side = "ok", value.value, ty.ok
        elif isinstance(value, Err):
            case, payload, side = "err", value.value, ty.err
        elif isinstance(value, Mapping) and len(value) == 1 and next(iter(value)) in ("ok", "err"):
            case = next(iter(value))
            payload, side = value[case], ty.ok if case == "ok" else ty.err
        else:
            raise ValueMismatch(f"expected {ty} (Ok(...) or Err(...)), found {_what(value)}")
        if side is None:
            if payload is not None:
                raise ValueMismatch(f"{case} of {ty} carries no value, found {_what(payload)}")
            return {case: None}
        return {case: _at(lambda: to_wire(payload, side, depth + 1), case)}
    if isinstance(ty, RecordType):
        return _record_to_wire(value, ty, depth)
    if isinstance(ty, VariantType):
        if isinstance(value, Variant):
            case, payload = value.case, value.value
        elif isinstance(value, str):
            case, payload = value, None
        elif isinstance(value, Mapping) and len(value) == 1:
            case, payload = next(iter(value.items()))
            if not isinstance(case, str):
                raise ValueMismatch(f"expected {ty} (a case name), found {_what(value)}")
        else:
            raise ValueMismatch(f"expected variant {ty} (Variant(case, value)), found {_what(value)}")
        cases = dict(ty.cases)
        case = _case_name(case, cases, "case")
        payload_ty = cases[case]
        if payload_ty is None:
            if payload is not None:
                raise ValueMismatch(f"case {case} of {ty} carries no value, found {_what(payload)}")
            return case
        return {case: _at(lambda: to_wire(payload, payload_ty, depth + 1), case)}
    if isinstance(ty, EnumType):
        if isinstance(value, enum.Enum) and isinstance(value.value, str):
            value = value.value
        if not isinstance(value, str):
            raise ValueMismatch(f"expected enum {ty} (a case name), found {_what(value)}")
        return _case_name(value, ty.cases, "case")
    if isinstance(ty, FlagsType):
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
            raise ValueMismatch(f"expected flags {ty} (a set of names), found {_what(value)}")
        names: list[str] = []
        for item in value:
            if not isinstance(item, str):
                raise ValueMismatch(f"expected a flag name of {ty}, found {_what(item)}")
            name = _case_name(item, ty.names, "flag")
            if name not in names:
                names.append(name)
        return names
    if isinstance(ty, MapType):
        if not isinstance(value, Mapping):
            raise ValueMismatch(f"expected {ty} (a dict), found {_what(value)}")
        return {
            _freeze(to_wire(k, ty.key, depth + 1)): _at(
                lambda v=v: to_wire(v, ty.value, depth + 1), f"[{k!r}]"
            )
            for k, v in value.items()
        }
    if isinstance(ty, Unsupported):
        raise ValueMismatch(f"{ty.text} cannot be sent: {ty.why}")
    raise ValueMismatch(f"an unknown type {ty!r}")


def _fixed(n: int, ty: ListType) -> None:
    if ty.length is not None and n != ty.length:
        raise ValueMismatch(f"expected {ty.length} items, found {n}")


def _at(make: Any, segment: str) -> Any:
    try:
        return make()
    except ValueMismatch as e:
        raise e.within(segment) from None


def _freeze(value: Any) -> Any:
    """A map key as something hashable."""
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _freeze(v)) for k, v in value.items())
    return value


def _record_to_wire(value: Any, ty: RecordType, depth: int) -> dict[str, Any]:
    names = [f for f, _ in ty.fields]
    out: dict[str, Any] = {}
    if isinstance(value, Mapping):
        given: dict[str, Any] = {}
        for key, v in value.items():
            if not isinstance(key, str):
                raise ValueMismatch(f"record {ty} has text field names, found {_what(key)}")
            try:
                name = _case_name(key, names, "field")
            except ValueMismatch:
                raise ValueMismatch(f"unknown field `{key}` of record {ty}") from None
            given[name] = v
        for name, fty in ty.fields:
            if name not in given:
                raise ValueMismatch(f"missing field `{name}` of record {ty}")
            out[name] = _at(lambda n=name, t=fty: to_wire(given[n], t, depth + 1), name)
        return out
    if isinstance(value, (str, bytes, int, float, list, tuple)) or value is None:
        raise ValueMismatch(f"expected record {ty} (a dataclass or dict), found {_what(value)}")
    for name, fty in ty.fields:
        attr = py_name(name)
        if not hasattr(value, attr):
            raise ValueMismatch(f"missing field `{attr}` of record {ty}")
        out[name] = _at(lambda a=attr, t=fty: to_wire(getattr(value, a), t, depth + 1), name)
    return out


# ---------------------------------------------------------------------------------------
# wire -> Python


def from_wire(item: Any, ty: WitType, depth: int = 0) -> Any:
    """What a node sent for WIT type ``ty``, as a Python value (checked)."""
    _check_depth(depth)
    if isinstance(ty, Primitive):
        name = ty.name
        if name == "bool":
            if not isinstance(item, bool):
                raise ValueMismatch(f"expected bool, found {_what(item)}")
            return item
        if name in INTEGER_RANGES:
            if not isinstance(item, int) or isinstance(item, bool):
                raise ValueMismatch(f"expected {name}, found {_what(item)}")
            return _integer(item, name)
        if name in ("f32", "f64"):
            if isinstance(item, bool) or not isinstance(item, (int, float)):
                raise ValueMismatch(f"expected {name}, found {_what(item)}")
            try:
                return float(item)
            except OverflowError:
                raise ValueMismatch(f"{_what(item)} is out of range for {name}") from None
        if not isinstance(item, str):
            raise ValueMismatch(f"expected {name}, found {_what(item)}")
        if name == "char" and len(item) != 1:
            raise ValueMismatch(f"expected char, found text of {len(item)} characters")
        return item
    if isinstance(ty, ListType):
        elem = ty.element
        if isinstance(elem, Primitive) and elem.name == "u8" and isinstance(item, bytes):
            _fixed(len(item), ty)
            return item
        if not isinstance(item, (list, tuple)):
            raise ValueMismatch(f"expected {ty} (an array), found {_what(item)}")
        _fixed(len(item), ty)
        out = [_at(lambda v=v: from_wire(v, elem, depth + 1), f"[{i}]") for i, v in enumerate(item)]
        if isinstance(elem, Primitive) and elem.name == "u8":
            return bytes(out)
        return out
    if isinstance(ty, TupleType):
        if not isinstance(item, (list, tuple)):
            raise ValueMismatch(f"expected {ty} (an array), found {_what(item)}")
        if len(item) != len(ty.items):
            raise ValueMismatch(f"expected a tuple of {len(ty.items)}, found {len(item)} items")
        return tuple(
            _at(lambda v=v, t=t: from_wire(v, t, depth + 1), f"[{i}]")
            for i, (v, t) in enumerate(zip(item, ty.items))
        )
    if isinstance(ty, OptionType):
        if item is None:
            return None
        if isinstance(ty.inner, OptionType):
            if not isinstance(item, (list, tuple)) or len(item) != 1:
                raise ValueMismatch("expected null or a one-item array for an option of an option")
            return Some(from_wire(item[0], ty.inner, depth + 1))
        return from_wire(item, ty.inner, depth + 1)
    if isinstance(ty, ResultType):
        case, payload = _case_and_payload(item, str(ty))
        if case not in ("ok", "err"):
            raise ValueMismatch(f"no case `{case}` of {ty} (ok or err)")
        side = ty.ok if case == "ok" else ty.err
        value = _payload(case, payload, side, depth)
        return Ok(value) if case == "ok" else Err(value)
    if isinstance(ty, RecordType):
        if not isinstance(item, Mapping):
            raise ValueMismatch(f"expected record {ty} (a map), found {_what(item)}")
        entries = dict(item)
        values = {}
        for name, fty in ty.fields:
            if name not in entries:
                raise ValueMismatch(f"missing field `{name}` of record {ty}")
            raw = entries.pop(name)
            values[py_name(name)] = _at(lambda r=raw, t=fty: from_wire(r, t, depth + 1), name)
        if entries:
            raise ValueMismatch(f"unknown field `{next(iter(entries))}` of record {ty}")
        return record_class(ty)(**values)
    if isinstance(ty, VariantType):
        case, payload = _case_and_payload(item, f"variant {ty}")
        cases = dict(ty.cases)
        if case not in cases:
            raise ValueMismatch(f"no case `{case}` of variant {ty}")
        return Variant(case, _payload(case, payload, cases[case], depth))
    if isinstance(ty, EnumType):
        if not isinstance(item, str):
            raise ValueMismatch(f"expected enum {ty} (a case name), found {_what(item)}")
        if item not in ty.cases:
            raise ValueMismatch(f"no case `{item}` of enum {ty}")
        return item
    if isinstance(ty, FlagsType):
        if not isinstance(item, (list, tuple)):
            raise ValueMismatch(f"expected flags {ty} (an array of names), found {_what(item)}")
        for name in item:
            if not isinstance(name, str) or name not in ty.names:
                raise ValueMismatch(f"no flag {name!r} of {ty}")
        return frozenset(item)
    if isinstance(ty, MapType):
        if not isinstance(item, Mapping):
            raise ValueMismatch(f"expected {ty} (a map), found {_what(item)}")
        return {
            _freeze(from_wire(k, ty.key, depth + 1)): from_wire(v, ty.value, depth + 1)
            for k, v in item.items()
        }
    if isinstance(ty, Unsupported):
        raise ValueMismatch(f"{ty.text} cannot be received: {ty.why}")
    raise ValueMismatch(f"an unknown type {ty!r}")


def _case_and_payload(item: Any, what: str) -> tuple[str, Any]:
    if isinstance(item, str):
        return item, None
    if isinstance(item, Mapping) and len(item) == 1:
        case, payload = next(iter(item.items()))
        if isinstance(case, str):
            return case, payload
    raise ValueMismatch(f"expected {what} (a case name or a one-entry map), found {_what(item)}")


def _payload(case: str, payload: Any, ty: WitType | None, depth: int) -> Any:
    if ty is None:
        if payload is not None:
            raise ValueMismatch(f"case {case} carries no value, found {_what(payload)}")
        return None
    return _at(lambda: from_wire(payload, ty, depth + 1), case)


# ---------------------------------------------------------------------------------------
# Without a type


# The deepest nesting of a value without a type, sent (as before) and received (CBOR from
# the network is bounded by wire.MAX_NESTING already; this bounds any other input).
_MAX_PLAIN_DEPTH = 100
_MAX_RECEIVED_DEPTH = 200

# The range of a CBOR integer (major types 0 and 1).
_CBOR_INT = (-(1 << 64), (1 << 64) - 1)


def to_plain(value: Any, depth: int = 0) -> Any:
    """``value`` as CBOR-ready data without a WIT type (for :meth:`dhost.Client.call`):
    :class:`Ok`/:class:`Err` become ``{"ok": v}``/``{"err": v}``, :class:`Variant` its
    case name or ``{case: v}``, :class:`Some` a one-item list, dataclasses maps of their
    fields (by WIT name for record classes), sets (sorted) and tuples lists, enums their
    value. Raises :class:`ValueMismatch` naming the place of what has no CBOR form (an
    object of another kind, an integer beyond 64 bits, a set whose items cannot be
    ordered, a map key that is not hashable once converted, a value nested too deeply)."""
    if depth > _MAX_PLAIN_DEPTH:
        raise ValueMismatch("a value nested too deeply")
    if value is None or isinstance(value, (bool, float, str, bytes)):
        return value
    if isinstance(value, int):
        if not _CBOR_INT[0] <= value <= _CBOR_INT[1]:
            raise ValueMismatch(f"{_what(value)} does not fit in a CBOR integer (64 bits)")
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, Ok):
        return {"ok": _at(lambda: to_plain(value.value, depth + 1), "ok")}
    if isinstance(value, Err):
        return {"err": _at(lambda: to_plain(value.value, depth + 1), "err")}
    if isinstance(value, Some):
        return [_at(lambda: to_plain(value.value, depth + 1), "[0]")]
    if isinstance(value, Variant):
        if value.value is None:
            return value.case
        return {value.case: _at(lambda: to_plain(value.value, depth + 1), str(value.case))}
    if isinstance(value, enum.Enum):
        return to_plain(value.value, depth + 1)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        wit_names = getattr(type(value), "__wit_fields__", None)
        fields = dataclasses.fields(value)
        names = wit_names if wit_names else [f.name for f in fields]
        return {
            n: _at(lambda f=f: to_plain(getattr(value, f.name), depth + 1), str(n))
            for n, f in zip(names, fields)
        }
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            key = _at(lambda k=k: _plain_key(k, depth + 1), f"[{k!r}]")
            out[key] = _at(lambda v=v: to_plain(v, depth + 1), f"[{k!r}]")
        return out
    if isinstance(value, (set, frozenset)):
        items = [_at(lambda v=v: to_plain(v, depth + 1), f"[{v!r}]") for v in value]
        try:
            return sorted(items)
        except TypeError:
            raise ValueMismatch(
                f"a set whose items cannot be ordered ({_what(value)}): give a list"
            ) from None
    if isinstance(value, Iterable):
        return [_at(lambda v=v: to_plain(v, depth + 1), f"[{i}]") for i, v in enumerate(value)]
    raise ValueMismatch(f"{_what(value)} has no CBOR form")


def _plain_key(key: Any, depth: int) -> Any:
    """A map key as CBOR-ready data that is hashable: arrays as tuples (CBOR arrays)."""
    plain = _freeze_arrays(to_plain(key, depth))
    try:
        hash(plain)
    except TypeError:
        raise ValueMismatch(f"the map key {_what(key)} has no hashable CBOR form") from None
    return plain


def _freeze_arrays(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze_arrays(v) for v in value)
    return value


def from_plain(item: Any, depth: int = 0) -> Any:
    """What a node sent, without a WIT type: CBOR arrays as lists (cbor2 may give tuples).
    Raises :class:`ValueMismatch` for a value nested too deeply."""
    if depth > _MAX_RECEIVED_DEPTH:
        raise ValueMismatch("a value nested too deeply")
    if isinstance(item, (tuple, list)):
        return [from_plain(v, depth + 1) for v in item]
    if isinstance(item, Mapping):
        return {k: from_plain(v, depth + 1) for k, v in item.items()}
    return item
