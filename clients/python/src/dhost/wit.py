"""A reader of WIT text (the WebAssembly Interface Type language) for the subset a client
needs to call functions: packages (``package a:b;`` and nested ``package a:b { ... }``
blocks, as ``dhost inspect`` and wit-component print them), interfaces, ``use``, type
aliases, records, variants, enums, flags, options, results, lists (and fixed-length
lists), tuples, maps and every primitive type. Worlds are skipped; resources are read so
that the rest of an interface can be, but a function that takes or returns one (or a
``future``, ``stream`` or ``error-context``) cannot be called from the network: it is
marked unsupported, with the reason.

A WIT text may come from the network, so everything about it is bounded: its nesting,
the number of type expressions it holds and of types an interface resolves to
(:data:`MAX_TYPE_NODES`, beyond which :class:`WitError` is raised), and every walk of a
type is memoised, since named types may share parts (``type t2 = tuple<t1, t1>``). A
function whose types, spelled out, would have more than :data:`MAX_TYPE_NODES` nodes or
whose signature would be longer than :data:`MAX_SIGNATURE` characters is marked
unsupported (calling it raises :class:`WitError` saying so); a type's text
(``str(ty)``) is cut at :data:`MAX_SIGNATURE` characters.

:func:`parse` reads a text into a :class:`Document`; :meth:`Document.interface` resolves
one interface (its ``use`` clauses and type names) into a :class:`Interface` of
:class:`Function` signatures over the :class:`WitType` classes below.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from .errors import WitError

__all__ = [
    "parse",
    "Document",
    "Interface",
    "Function",
    "Param",
    "WitType",
    "Primitive",
    "ListType",
    "OptionType",
    "ResultType",
    "TupleType",
    "MapType",
    "RecordType",
    "VariantType",
    "EnumType",
    "FlagsType",
    "Unsupported",
    "PRIMITIVES",
    "INTEGER_RANGES",
    "split_interface_name",
    "MAX_TYPE_NODES",
    "MAX_SIGNATURE",
]

#: The primitive types (``float32`` and ``float64`` are their old names).
PRIMITIVES = frozenset(
    "bool s8 u8 s16 u16 s32 u32 s64 u64 f32 f64 float32 float64 char string".split()
)

#: The range of each integer type, inclusive.
INTEGER_RANGES: dict[str, tuple[int, int]] = {
    "s8": (-(1 << 7), (1 << 7) - 1),
    "u8": (0, (1 << 8) - 1),
    "s16": (-(1 << 15), (1 << 15) - 1),
    "u16": (0, (1 << 16) - 1),
    "s32": (-(1 << 31), (1 << 31) - 1),
    "u32": (0, (1 << 32) - 1),
    "s64": (-(1 << 63), (1 << 63) - 1),
    "u64": (0, (1 << 64) - 1),
}

# The most nested a type may be (WIT types are not recursive; this bounds hostile text).
_MAX_DEPTH = 100

#: The most type expressions a WIT text may hold, the most types one interface may
#: resolve to, and the most nodes one function's types may have once spelled out.
MAX_TYPE_NODES = 100_000

#: The longest a signature or a type's text may be, in characters.
MAX_SIGNATURE = 16_384

_T = TypeVar("_T")

# ---------------------------------------------------------------------------------------
# Resolved types


class WitType:
    """A resolved WIT type."""

    def describe(self) -> str:
        """The type as WIT writes it (cut at :data:`MAX_SIGNATURE` characters, with
        ``...``)."""
        return _render(self, MAX_SIGNATURE)

    def __str__(self) -> str:
        return self.describe()


@dataclass(frozen=True)
class Primitive(WitType):
    """``bool``, an integer, a float, ``char`` or ``string``."""

    name: str


@dataclass(frozen=True)
class ListType(WitType):
    """``list<T>``, or ``list<T, N>`` (a fixed length)."""

    element: WitType
    length: int | None = None


@dataclass(frozen=True)
class OptionType(WitType):
    """``option<T>``."""

    inner: WitType


@dataclass(frozen=True)
class ResultType(WitType):
    """``result<T, E>``, either side possibly absent."""

    ok: WitType | None
    err: WitType | None


@dataclass(frozen=True)
class TupleType(WitType):
    """``tuple<A, B, ...>``."""

    items: tuple[WitType, ...]


@dataclass(frozen=True)
class MapType(WitType):
    """``map<K, V>``."""

    key: WitType
    value: WitType


@dataclass(eq=False)
class RecordType(WitType):
    """A record: named fields, in order."""

    name: str
    fields: tuple[tuple[str, WitType], ...]
    #: The Python class values of this record decode to (made by :mod:`dhost.values`).
    py_class: Any = field(default=None, repr=False)


@dataclass(frozen=True, eq=False)
class VariantType(WitType):
    """A variant: cases, each with an optional payload."""

    name: str
    cases: tuple[tuple[str, WitType | None], ...]


@dataclass(frozen=True, eq=False)
class EnumType(WitType):
    """An enum: cases without payloads."""

    name: str
    cases: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class FlagsType(WitType):
    """Flags: a set of names."""

    name: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class Unsupported(WitType):
    """A type that cannot travel between nodes: a resource handle, a future, a stream or
    an error-context."""

    text: str
    why: str


class _TooLong(Exception):
    pass


def _emit_type(ty: WitType | None, emit: Callable[[str], None]) -> None:
    if ty is None:
        emit("_")
    elif isinstance(ty, Primitive):
        emit(ty.name)
    elif isinstance(ty, (RecordType, VariantType, EnumType, FlagsType)):
        emit(ty.name)
    elif isinstance(ty, Unsupported):
        emit(ty.text)
    elif isinstance(ty, ListType):
        emit("list<")
        _emit_type(ty.element, emit)
        emit(">" if ty.length is None else f", {ty.length}>")
    elif isinstance(ty, OptionType):
        emit("option<")
        _emit_type(ty.inner, emit)
        emit(">")
    elif isinstance(ty, ResultType):
        if ty.ok is None and ty.err is None:
            emit("result")
        elif ty.err is None:
            emit("result<")
            _emit_type(ty.ok, emit)
            emit(">")
        else:
            emit("result<")
            _emit_type(ty.ok, emit)
            emit(", ")
            _emit_type(ty.err, emit)
            emit(">")
    elif isinstance(ty, TupleType):
        emit("tuple<")
        for i, item in enumerate(ty.items):
            if i:
                emit(", ")
            _emit_type(item, emit)
        emit(">")
    elif isinstance(ty, MapType):
        emit("map<")
        _emit_type(ty.key, emit)
        emit(", ")
        _emit_type(ty.value, emit)
        emit(">")
    else:
        emit(type(ty).__name__)


def _bounded(write: Callable[[Callable[[str], None]], None], limit: int) -> tuple[str, bool]:
    """What ``write`` emits, cut at ``limit`` characters (without ever producing more),
    and whether it was cut."""
    parts: list[str] = []
    left = [limit]

    def emit(text: str) -> None:
        if len(text) > left[0]:
            parts.append(text[: left[0]])
            raise _TooLong
        parts.append(text)
        left[0] -= len(text)

    try:
        write(emit)
    except _TooLong:
        return "".join(parts) + "...", True
    return "".join(parts), False


def _render(ty: WitType, limit: int) -> str:
    return _bounded(lambda emit: _emit_type(ty, emit), limit)[0]


def _write_signature(
    name: str, params: tuple[Param, ...], result: WitType | None, emit: Callable[[str], None]
) -> None:
    emit(f"{name}: func(")
    for i, p in enumerate(params):
        emit(f"{', ' if i else ''}{p.name}: ")
        _emit_type(p.type, emit)
    emit(")")
    if result is not None:
        emit(" -> ")
        _emit_type(result, emit)


def _signature(name: str, params: tuple[Param, ...], result: WitType | None, limit: int) -> str:
    return _bounded(lambda emit: _write_signature(name, params, result, emit), limit)[0]


@dataclass(frozen=True)
class Param:
    """A parameter: its WIT name, its Python name and its type."""

    name: str
    py_name: str
    type: WitType


@dataclass(frozen=True)
class Function:
    """A function of an interface, resolved."""

    #: Its WIT name (``read-file``).
    name: str
    #: Its Python name (``read_file``).
    py_name: str
    #: Its function id on the wire (``dhost:hostile/attacks#read-file``).
    function_id: str
    params: tuple[Param, ...]
    #: Its result type; None when it has none (a multicast function).
    result: WitType | None
    #: Why it cannot be called from the network (a resource in its signature, a type the
    #: text does not define), or None.
    unsupported: str | None = None
    #: Its documentation comment, if the text had one.
    doc: str = ""

    def signature(self) -> str:
        """The function as WIT writes it (cut at :data:`MAX_SIGNATURE` characters)."""
        return _signature(self.name, self.params, self.result, MAX_SIGNATURE)


@dataclass
class Interface:
    """An interface, resolved: its functions and its named types."""

    #: Its full name, as the component names it (``dhost:kv/store``, with ``@version``).
    name: str
    functions: dict[str, Function]
    types: dict[str, WitType]
    doc: str = ""


# ---------------------------------------------------------------------------------------
# Names


def py_name(wit_name: str) -> str:
    """A WIT name (``read-file``) as a Python identifier (``read_file``); Python keywords
    get a trailing underscore (``from_``)."""
    name = wit_name.lstrip("%").replace("-", "_")
    if keyword.iskeyword(name):
        name += "_"
    return name


def class_name(wit_name: str) -> str:
    """A WIT type name (``descriptor-stat``) as a Python class name (``DescriptorStat``)."""
    return "".join(part[:1].upper() + part[1:] for part in wit_name.lstrip("%").split("-"))


def split_interface_name(name: str) -> tuple[str, str, str | None]:
    """``ns:pkg/iface@1.0`` as (``ns:pkg``, ``iface``, ``1.0``)."""
    m = re.fullmatch(r"([A-Za-z][\w-]*:[A-Za-z][\w:-]*)/([A-Za-z%][\w-]*)(?:@([\w.+-]+))?", name)
    if not m:
        raise WitError(
            f"{name!r} is not an interface name such as dhost:kv/store (namespace:package/interface)"
        )
    return m.group(1), m.group(2).lstrip("%"), m.group(3)


# ---------------------------------------------------------------------------------------
# Tokens

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<doc>///[^\n]*)
  | (?P<comment>//[^\n]*)
  | (?P<block>/\*)
  | (?P<arrow>->)
  | (?P<version>(?<=@)\d(?:[0-9A-Za-z.+-]*[0-9A-Za-z])?)
  | (?P<ident>%?[A-Za-z_][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*)
  | (?P<int>\d+)
  | (?P<punct>[{}()<>,;:=./*@])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    line: int
    doc: str = ""


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    pos, line, doc = 0, 1, []
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise WitError(f"line {line}: unexpected character {text[pos]!r}")
        kind = m.lastgroup or ""
        value = m.group()
        if kind == "block":
            depth, end = 1, pos + 2
            while depth and end < len(text):
                if text.startswith("/*", end):
                    depth, end = depth + 1, end + 2
                elif text.startswith("*/", end):
                    depth, end = depth - 1, end + 2
                else:
                    end += 1
            if depth:
                raise WitError(f"line {line}: an unterminated comment")
            value = text[pos:end]
        elif kind == "doc":
            doc.append(value[3:].strip())
        elif kind not in ("space", "comment"):
            out.append(_Token(kind, value, line, "\n".join(doc)))
            doc = []
        line += value.count("\n")
        pos += len(value)
    out.append(_Token("eof", "", line))
    return out


# ---------------------------------------------------------------------------------------
# The syntax tree: type expressions are kept unresolved until an interface is asked for.

# Tuple trees: ("name", n) / ("list", T, N) / ("option", T) / ("record", name, fields) / ...
_TypeExpr = tuple[Any, ...]


@dataclass
class _InterfaceAst:
    package: str
    name: str
    doc: str
    uses: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)
    types: dict[str, _TypeExpr] = field(default_factory=dict)
    functions: list[tuple[str, list[tuple[str, _TypeExpr]], _TypeExpr | None, str]] = field(
        default_factory=list
    )


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.interfaces: dict[tuple[str, str], _InterfaceAst] = {}
        self.type_nodes = 0

    # -- token helpers
    @property
    def tok(self) -> _Token:
        return self.toks[self.i]

    def error(self, what: str) -> WitError:
        t = self.tok
        found = "the end of the text" if t.kind == "eof" else repr(t.text)
        return WitError(f"line {t.line}: expected {what}, found {found}")

    def next(self) -> _Token:
        t = self.toks[self.i]
        if t.kind != "eof":
            self.i += 1
        return t

    def at(self, text: str) -> bool:
        return self.tok.text == text and self.tok.kind in ("punct", "ident", "arrow")

    def eat(self, text: str) -> bool:
        if self.at(text):
            self.next()
            return True
        return False

    def expect(self, text: str) -> None:
        if not self.eat(text):
            raise self.error(f"`{text}`")

    def ident(self, what: str = "a name") -> str:
        if self.tok.kind != "ident":
            raise self.error(what)
        return self.next().text.lstrip("%")

    def skip_braces(self) -> None:
        """Skips a `{ ... }` block (the `{` is the current token)."""
        self.expect("{")
        depth = 1
        while depth:
            t = self.next()
            if t.kind == "eof":
                raise self.error("`}`")
            if t.text == "{" and t.kind == "punct":
                depth += 1
            elif t.text == "}" and t.kind == "punct":
                depth -= 1

    def skip_gates(self) -> None:
        """Skips feature gates such as `@since(version = 0.2.0)` and `@unstable(...)`."""
        while self.at("@"):
            self.next()
            self.ident("a gate name")
            if self.at("("):
                depth = 0
                while True:
                    t = self.next()
                    if t.kind == "eof":
                        raise self.error("`)`")
                    if t.text == "(":
                        depth += 1
                    elif t.text == ")":
                        depth -= 1
                        if not depth:
                            break

    def package_name(self) -> str:
        ns = self.ident("a package namespace")
        self.expect(":")
        name = self.ident("a package name")
        while self.eat(":"):  # nested namespaces
            name += ":" + self.ident("a package name")
        version = self.version()
        return f"{ns}:{name}" + (f"@{version}" if version else "")

    def version(self) -> str | None:
        if self.at("@") and self.toks[self.i + 1].kind == "version":
            self.next()
            return self.next().text
        return None

    # -- the document
    def document(self) -> dict[tuple[str, str], _InterfaceAst]:
        package = ""
        while self.tok.kind != "eof":
            self.skip_gates()
            if self.eat("package"):
                name = self.package_name()
                if self.at("{"):
                    self.next()
                    self.items(name, until="}")
                    self.expect("}")
                else:
                    self.expect(";")
                    package = name
            else:
                self.item(package)
        return self.interfaces

    def items(self, package: str, until: str) -> None:
        while not self.at(until):
            if self.tok.kind == "eof":
                raise self.error(f"`{until}`")
            self.skip_gates()
            self.item(package)

    def item(self, package: str) -> None:
        doc = self.tok.doc
        if self.eat("interface"):
            name = self.ident("an interface name")
            if not package:
                raise WitError(f"interface {name} comes before any `package` declaration")
            ast = _InterfaceAst(package, name, doc)
            self.expect("{")
            self.interface_body(ast)
            self.expect("}")
            self.interfaces[(package, name)] = ast
        elif self.eat("world"):
            self.ident("a world name")
            self.skip_braces()
        elif self.eat("use"):
            while not self.eat(";"):
                if self.tok.kind == "eof":
                    raise self.error("`;`")
                self.next()
        else:
            raise self.error("`interface`, `world`, `use` or `package`")

    # -- interfaces
    def interface_body(self, ast: _InterfaceAst) -> None:
        while not self.at("}"):
            self.skip_gates()
            doc = self.tok.doc
            if self.tok.kind == "eof":
                raise self.error("`}`")
            if self.eat("use"):
                path = self.use_path()
                self.expect(".")
                self.expect("{")
                names = []
                while not self.eat("}"):
                    name = self.ident("a type name")
                    alias = self.ident("a name") if self.eat("as") else name
                    names.append((name, alias))
                    if not self.eat(","):
                        self.expect("}")
                        break
                self.expect(";")
                ast.uses.append((path, names))
            elif self.at("type") and self.toks[self.i + 1].kind == "ident":
                self.next()
                name = self.ident()
                self.expect("=")
                ast.types[name] = self.type_expr()
                self.expect(";")
            elif self.at("record") and self.toks[self.i + 1].kind == "ident":
                self.next()
                name = self.ident()
                fields = self.braced_list(lambda: (self.ident("a field name"), self.colon_type()))
                ast.types[name] = ("record", name, fields)
            elif self.at("variant") and self.toks[self.i + 1].kind == "ident":
                self.next()
                name = self.ident()
                ast.types[name] = ("variant", name, self.braced_list(self.case))
            elif self.at("enum") and self.toks[self.i + 1].kind == "ident":
                self.next()
                name = self.ident()
                ast.types[name] = ("enum", name, self.braced_list(self.ident))
            elif self.at("flags") and self.toks[self.i + 1].kind == "ident":
                self.next()
                name = self.ident()
                ast.types[name] = ("flags", name, self.braced_list(self.ident))
            elif self.at("resource") and self.toks[self.i + 1].kind == "ident":
                self.next()
                name = self.ident()
                ast.types[name] = ("resource", name)
                if self.at("{"):
                    self.skip_braces()
                else:
                    self.expect(";")
            elif self.tok.kind == "ident":
                name = self.ident()
                self.expect(":")
                self.eat("async")
                if not self.eat("func"):
                    raise self.error("`func`")
                params = self.params()
                result = None
                if self.eat("->"):
                    if self.at("("):
                        named = self.params()
                        result = ("tuple", [t for _, t in named]) if len(named) != 1 else named[0][1]
                        if not named:
                            result = None
                    else:
                        result = self.type_expr()
                self.expect(";")
                ast.functions.append((name, params, result, doc))
            else:
                raise self.error("a type, a function or `use`")

    def use_path(self) -> str:
        first = self.ident("an interface")
        if self.eat(":"):
            name = self.ident("a package name")
            while self.eat(":"):
                name += ":" + self.ident("a package name")
            self.expect("/")
            iface = self.ident("an interface name")
            version = self.version()
            return f"{first}:{name}/{iface}" + (f"@{version}" if version else "")
        return first

    def colon_type(self) -> _TypeExpr:
        self.expect(":")
        return self.type_expr()

    def case(self) -> tuple[str, _TypeExpr | None]:
        name = self.ident("a case name")
        if self.eat("("):
            ty = self.type_expr()
            self.expect(")")
            return name, ty
        return name, None

    def braced_list(self, one: Callable[[], _T]) -> list[_T]:
        self.expect("{")
        out: list[_T] = []
        while not self.eat("}"):
            self.skip_gates()
            out.append(one())
            if not self.eat(","):
                self.expect("}")
                break
        return out

    def params(self) -> list[tuple[str, _TypeExpr]]:
        self.expect("(")
        out = []
        while not self.eat(")"):
            name = self.ident("a parameter name")
            out.append((name, self.colon_type()))
            if not self.eat(","):
                self.expect(")")
                break
        return out

    def type_expr(self, depth: int = 0) -> _TypeExpr:
        if depth > _MAX_DEPTH:
            raise self.error("a less deeply nested type")
        self.type_nodes += 1
        if self.type_nodes > MAX_TYPE_NODES:
            raise WitError(
                f"line {self.tok.line}: the WIT text holds more than {MAX_TYPE_NODES} type "
                "expressions, more than this client reads"
            )
        t = self.tok
        if t.kind != "ident":
            raise self.error("a type")
        name = self.next().text
        bare = name.lstrip("%")
        if name.startswith("%"):
            return ("name", bare)

        def args() -> list[_TypeExpr | None]:
            self.expect("<")
            out: list[_TypeExpr | None] = []
            while True:
                if self.at("_"):
                    self.next()
                    out.append(None)
                else:
                    out.append(self.type_expr(depth + 1))
                if not self.eat(","):
                    break
            self.expect(">")
            return out

        if name == "list":
            self.expect("<")
            elem = self.type_expr(depth + 1)
            length = None
            if self.eat(","):
                if self.tok.kind != "int":
                    raise self.error("a list length")
                length = int(self.next().text)
            self.expect(">")
            return ("list", elem, length)
        if name == "option":
            (inner,) = self._n(args(), 1, "option")
            return ("option", inner)
        if name == "result":
            if not self.at("<"):
                return ("result", None, None)
            a = args()
            if len(a) == 1:
                return ("result", a[0], None)
            if len(a) == 2:
                return ("result", a[0], a[1])
            raise WitError(f"line {t.line}: result takes one or two types")
        if name == "tuple":
            return ("tuple", args())
        if name == "map":
            k, v = self._n(args(), 2, "map")
            return ("map", k, v)
        if name in ("own", "borrow"):
            (r,) = self._n(args(), 1, name)
            return ("handle", name, r)
        if name in ("future", "stream"):
            if self.at("<"):
                args()
            return ("unsupported", name)
        if name == "error-context":
            return ("unsupported", name)
        return ("name", bare)

    def _n(self, items: list[Any], n: int, what: str) -> list[Any]:
        if len(items) != n or any(i is None for i in items):
            raise WitError(f"line {self.tok.line}: {what} takes {n} type(s)")
        return items


# ---------------------------------------------------------------------------------------
# The document and resolution


class Document:
    """A parsed WIT text: its interfaces, by package."""

    def __init__(self, interfaces: dict[tuple[str, str], _InterfaceAst]) -> None:
        self._interfaces = interfaces

    def interface_names(self) -> list[str]:
        """Every interface of the text, by full name (``ns:pkg/iface@version``)."""
        return sorted(_full_name(pkg, name) for pkg, name in self._interfaces)

    def _find(self, name: str) -> _InterfaceAst:
        pkg, iface, version = split_interface_name(name)
        want = f"{pkg}@{version}" if version else pkg
        found = self._interfaces.get((want, iface))
        if found is None and version is None:
            # `dhost:kv/store` names the one version of the package the text has.
            candidates = [
                ast for (p, n), ast in self._interfaces.items() if n == iface and p.split("@")[0] == pkg
            ]
            if len(candidates) == 1:
                found = candidates[0]
        if found is None:
            known = ", ".join(self.interface_names()) or "none"
            raise WitError(f"the WIT text defines no interface {name} (it defines: {known})")
        return found

    def interface(self, name: str) -> Interface:
        """The interface ``name`` (``dhost:kv/store``), its types and functions resolved."""
        ast = self._find(name)
        full = _full_name(ast.package, ast.name)
        resolution = _Resolution(self)
        resolver = resolution.resolver(ast)
        types: dict[str, WitType] = {}
        for tname in list(ast.types) + [alias for _, names in ast.uses for _, alias in names]:
            try:
                types[tname] = resolver.named(tname)
            except _TooManyTypes:
                raise
            except WitError:
                pass  # a type it cannot resolve fails the functions that need it
        functions: dict[str, Function] = {}
        walks = _Walks()
        for fname, params, result, doc in ast.functions:
            unsupported = None
            rparams: list[Param] = []
            rresult: WitType | None = None
            try:
                _check_unique([pname for pname, _ in params], f"the parameters of {fname}")
                for pname, pty in params:
                    rparams.append(Param(pname, py_name(pname), resolver.resolve(pty)))
                rresult = resolver.resolve(result) if result is not None else None
                unsupported = walks.why_not(fname, tuple(rparams), rresult)
            except _TooManyTypes:
                raise
            except WitError as e:
                unsupported = str(e)
            functions[fname] = Function(
                name=fname,
                py_name=py_name(fname),
                function_id=f"{full}#{fname}",
                params=tuple(rparams),
                result=rresult,
                unsupported=unsupported,
                doc=doc,
            )
        return Interface(name=full, functions=functions, types=types, doc=ast.doc)


def _check_unique(names: list[str], what: str) -> None:
    """Raises :class:`WitError` if two of ``names`` (of fields, cases, parameters) are one
    name, in WIT or in Python (``a-b`` and ``%a-b`` are both ``a_b``)."""
    seen: set[str] = set()
    for name in names:
        python = py_name(name)
        if python in seen:
            raise WitError(f"{what} name {name.lstrip('%')} twice")
        seen.add(python)


def _full_name(package: str, iface: str) -> str:
    pkg, _, version = package.partition("@")
    return f"{pkg}/{iface}" + (f"@{version}" if version else "")


def _children(ty: WitType) -> list[WitType]:
    """The types directly inside ``ty``."""
    out: list[WitType | None] = []
    if isinstance(ty, ListType):
        out = [ty.element]
    elif isinstance(ty, OptionType):
        out = [ty.inner]
    elif isinstance(ty, ResultType):
        out = [ty.ok, ty.err]
    elif isinstance(ty, TupleType):
        out = list(ty.items)
    elif isinstance(ty, MapType):
        out = [ty.key, ty.value]
    elif isinstance(ty, RecordType):
        out = [t for _, t in ty.fields]
    elif isinstance(ty, VariantType):
        out = [t for _, t in ty.cases]
    return [t for t in out if t is not None]


class _Walks:
    """Walks of resolved types, memoised by identity: types share their parts (a named
    type used twice is one object), so a walk without memory can take exponential time.
    Resolved types are at most about :data:`_MAX_DEPTH` levels deep, which bounds the
    recursion."""

    def __init__(self) -> None:
        self._why: dict[int, str | None] = {}
        self._size: dict[int, int] = {}
        self._keep: list[WitType] = []  # the memos' keys stay valid while they live

    def unsupported(self, ty: WitType) -> str | None:
        """Why a value of ``ty`` cannot travel, if it cannot."""
        key = id(ty)
        if key in self._why:
            return self._why[key]
        why = None
        if isinstance(ty, Unsupported):
            why = f"it uses {ty.text}: {ty.why}"
        else:
            for child in _children(ty):
                why = self.unsupported(child)
                if why:
                    break
        self._why[key] = why
        self._keep.append(ty)
        return why

    def size(self, ty: WitType) -> int:
        """How many nodes ``ty`` has spelled out as a tree (at most MAX_TYPE_NODES + 1)."""
        key = id(ty)
        if key not in self._size:
            total = 1
            for child in _children(ty):
                total = min(total + self.size(child), MAX_TYPE_NODES + 1)
            self._size[key] = total
            self._keep.append(ty)
        return self._size[key]

    def why_not(self, name: str, params: tuple[Param, ...], result: WitType | None) -> str | None:
        """Why the function cannot be called from the network, or None."""
        types = [p.type for p in params] + ([result] if result is not None else [])
        for ty in types:
            why = self.unsupported(ty)
            if why:
                return why
        total = 0
        for ty in types:
            total += self.size(ty)
            if total > MAX_TYPE_NODES:
                return (
                    f"its types, spelled out, have more than {MAX_TYPE_NODES} parts, more "
                    "than this client carries"
                )
        _, cut = _bounded(lambda emit: _write_signature(name, params, result, emit), MAX_SIGNATURE)
        if cut:
            return f"its signature is longer than {MAX_SIGNATURE} characters"
        return None


class _TooManyTypes(WitError):
    """An interface that resolves to more types than :data:`MAX_TYPE_NODES`."""


class _Resolution:
    """The resolution of one interface: one resolver per interface it reaches (through
    ``use``), each with its cache, and the count of the types made."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.resolvers: dict[tuple[str, str], _Resolver] = {}
        self.made = 0

    def resolver(self, ast: _InterfaceAst) -> _Resolver:
        key = (ast.package, ast.name)
        if key not in self.resolvers:
            self.resolvers[key] = _Resolver(self, ast)
        return self.resolvers[key]

    def made_one(self) -> None:
        self.made += 1
        if self.made > MAX_TYPE_NODES:
            raise _TooManyTypes(
                f"the interface resolves to more than {MAX_TYPE_NODES} types, more than "
                "this client reads"
            )


class _Resolver:
    """Resolves the type names of one interface (its own, and those it uses)."""

    def __init__(self, resolution: _Resolution, ast: _InterfaceAst) -> None:
        self.resolution = resolution
        self.doc = resolution.doc
        self.ast = ast
        self.cache: dict[str, WitType] = {}
        self.busy: set[str] = set()

    def named(self, name: str, depth: int = 0) -> WitType:
        if name in self.cache:
            return self.cache[name]
        if name in self.busy:
            raise WitError(f"type {name} of interface {self.ast.name} refers to itself")
        if depth > _MAX_DEPTH:
            raise WitError(f"type {name} of interface {self.ast.name} is nested too deeply")
        self.busy.add(name)
        try:
            ty = self._named(name, depth)
        finally:
            self.busy.discard(name)
        self.cache[name] = ty
        return ty

    def _named(self, name: str, depth: int) -> WitType:
        ast = self.ast
        if name in ast.types:
            expr = ast.types[name]
            kind = expr[0]
            if kind in ("record", "variant", "enum", "flags"):
                _check_unique([c if isinstance(c, str) else c[0] for c in expr[2]], f"{kind} {name}")
            if kind == "record":
                return RecordType(name, tuple((f, self.resolve(t, depth + 1)) for f, t in expr[2]))
            if kind == "variant":
                return VariantType(
                    name,
                    tuple(
                        (c, self.resolve(t, depth + 1) if t is not None else None) for c, t in expr[2]
                    ),
                )
            if kind == "enum":
                return EnumType(name, tuple(expr[2]))
            if kind == "flags":
                return FlagsType(name, tuple(expr[2]))
            if kind == "resource":
                return Unsupported(
                    f"resource {name}", "a resource cannot leave its guest (docs/wire.md, Values)"
                )
            return self.resolve(expr, depth + 1)
        for path, names in ast.uses:
            for original, alias in names:
                if alias == name:
                    return self._used(path, original, depth)
        if name in PRIMITIVES:
            return Primitive({"float32": "f32", "float64": "f64"}.get(name, name))
        raise WitError(f"interface {_full_name(ast.package, ast.name)} defines no type {name}")

    def _used(self, path: str, name: str, depth: int) -> WitType:
        if ":" in path:
            try:
                target = self.doc._find(path)
            except WitError:
                raise WitError(
                    f"type {name} comes from interface {path}, which the WIT text does not define"
                ) from None
        else:
            local = self.doc._interfaces.get((self.ast.package, path))
            if local is None:
                raise WitError(
                    f"type {name} comes from interface {path} of package {self.ast.package}, "
                    "which the WIT text does not define"
                )
            target = local
        return self.resolution.resolver(target).named(name, depth + 1)

    def resolve(self, expr: _TypeExpr, depth: int = 0) -> WitType:
        if depth > _MAX_DEPTH:
            raise WitError("a type nested too deeply")
        self.resolution.made_one()
        kind = expr[0]
        if kind == "name":
            name: str = expr[1]
            if name in PRIMITIVES and name not in self.ast.types:
                return Primitive({"float32": "f32", "float64": "f64"}.get(name, name))
            return self.named(name, depth + 1)
        if kind == "list":
            return ListType(self.resolve(expr[1], depth + 1), expr[2])
        if kind == "option":
            return OptionType(self.resolve(expr[1], depth + 1))
        if kind == "result":
            return ResultType(
                self.resolve(expr[1], depth + 1) if expr[1] is not None else None,
                self.resolve(expr[2], depth + 1) if expr[2] is not None else None,
            )
        if kind == "tuple":
            return TupleType(tuple(self.resolve(t, depth + 1) for t in expr[1]))
        if kind == "map":
            return MapType(self.resolve(expr[1], depth + 1), self.resolve(expr[2], depth + 1))
        if kind == "handle":
            return Unsupported(
                f"{expr[1]}<{expr[2][1] if isinstance(expr[2], tuple) else expr[2]}>",
                "a resource cannot leave its guest (docs/wire.md, Values)",
            )
        if kind == "unsupported":
            return Unsupported(expr[1], f"a {expr[1]} cannot travel between nodes (docs/wire.md, Values)")
        raise WitError(f"an unknown type expression {kind}")


def parse(text: str) -> Document:
    """Reads a WIT text (one file, or the whole of what ``dhost inspect`` prints)."""
    if not isinstance(text, str):
        raise WitError("the WIT text is not a string")
    return Document(_Parser(text).document())
