"""A reader of WIT text (the WebAssembly Interface Type language) for the subset a client
needs to call functions: packages (``package a:b;`` and nested ``package a:b { ... }``
blocks, as ``dhost inspect`` and wit-component print them), interfaces, ``use``, type
aliases, records, variants, enums, flags, options, results, lists (and fixed-length
lists), tuples, maps and every primitive type. Worlds are skipped; resources are read so
that the rest of an interface can be, but a function that takes or returns one (or a
``future``, ``stream`` or ``error-context``) cannot be called from the network: it is
marked unsupported, with the reason.

:func:`parse` reads a text into a :class:`Document`; :meth:`Document.interface` resolves
one interface (its ``use`` clauses and type names) into a :class:`Interface` of
:class:`Function` signatures over the :class:`WitType` classes below.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterator

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

# ---------------------------------------------------------------------------------------
# Resolved types


class WitType:
    """A resolved WIT type."""

    def describe(self) -> str:
        """The type as WIT writes it."""
        raise NotImplementedError

    def __str__(self) -> str:
        return self.describe()


@dataclass(frozen=True)
class Primitive(WitType):
    """``bool``, an integer, a float, ``char`` or ``string``."""

    name: str

    def describe(self) -> str:
        return self.name


@dataclass(frozen=True)
class ListType(WitType):
    """``list<T>``, or ``list<T, N>`` (a fixed length)."""

    element: WitType
    length: int | None = None

    def describe(self) -> str:
        if self.length is None:
            return f"list<{self.element}>"
        return f"list<{self.element}, {self.length}>"


@dataclass(frozen=True)
class OptionType(WitType):
    """``option<T>``."""

    inner: WitType

    def describe(self) -> str:
        return f"option<{self.inner}>"


@dataclass(frozen=True)
class ResultType(WitType):
    """``result<T, E>``, either side possibly absent."""

    ok: WitType | None
    err: WitType | None

    def describe(self) -> str:
        if self.ok is None and self.err is None:
            return "result"
        if self.err is None:
            return f"result<{self.ok}>"
        return f"result<{self.ok if self.ok is not None else '_'}, {self.err}>"


@dataclass(frozen=True)
class TupleType(WitType):
    """``tuple<A, B, ...>``."""

    items: tuple[WitType, ...]

    def describe(self) -> str:
        return f"tuple<{', '.join(map(str, self.items))}>"


@dataclass(frozen=True)
class MapType(WitType):
    """``map<K, V>``."""

    key: WitType
    value: WitType

    def describe(self) -> str:
        return f"map<{self.key}, {self.value}>"


@dataclass(eq=False)
class RecordType(WitType):
    """A record: named fields, in order."""

    name: str
    fields: tuple[tuple[str, WitType], ...]
    #: The Python class values of this record decode to (made by :mod:`dhost.values`).
    py_class: Any = field(default=None, repr=False)

    def describe(self) -> str:
        return self.name


@dataclass(frozen=True, eq=False)
class VariantType(WitType):
    """A variant: cases, each with an optional payload."""

    name: str
    cases: tuple[tuple[str, WitType | None], ...]

    def describe(self) -> str:
        return self.name


@dataclass(frozen=True, eq=False)
class EnumType(WitType):
    """An enum: cases without payloads."""

    name: str
    cases: tuple[str, ...]

    def describe(self) -> str:
        return self.name


@dataclass(frozen=True, eq=False)
class FlagsType(WitType):
    """Flags: a set of names."""

    name: str
    names: tuple[str, ...]

    def describe(self) -> str:
        return self.name


@dataclass(frozen=True)
class Unsupported(WitType):
    """A type that cannot travel between nodes: a resource handle, a future, a stream or
    an error-context."""

    text: str
    why: str

    def describe(self) -> str:
        return self.text


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
        """The function as WIT writes it."""
        params = ", ".join(f"{p.name}: {p.type}" for p in self.params)
        result = f" -> {self.result}" if self.result is not None else ""
        return f"{self.name}: func({params}){result}"


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


_KEYWORDS = frozenset(
    "False None True and as assert async await break class continue def del elif else "
    "except finally for from global if import in is lambda nonlocal not or pass raise "
    "return try while with yield".split()
)


def py_name(wit_name: str) -> str:
    """A WIT name (``read-file``) as a Python identifier (``read_file``); Python keywords
    get a trailing underscore (``from_``)."""
    name = wit_name.lstrip("%").replace("-", "_")
    if name in _KEYWORDS:
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

_TypeExpr = Any  # tuple trees: ("name", n) / ("list", T, N) / ("option", T) / ...


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

    def braced_list(self, one: Any) -> list[Any]:
        self.expect("{")
        out = []
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
        t = self.tok
        if t.kind != "ident":
            raise self.error("a type")
        name = self.next().text
        bare = name.lstrip("%")
        if name.startswith("%"):
            return ("name", bare)

        def args() -> list[_TypeExpr]:
            self.expect("<")
            out: list[_TypeExpr] = []
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
        resolver = _Resolver(self, ast)
        types: dict[str, WitType] = {}
        for tname in list(ast.types) + [alias for _, names in ast.uses for _, alias in names]:
            try:
                types[tname] = resolver.named(tname)
            except WitError:
                pass  # a type it cannot resolve fails the functions that need it
        functions: dict[str, Function] = {}
        for fname, params, result, doc in ast.functions:
            unsupported = None
            rparams: list[Param] = []
            rresult: WitType | None = None
            try:
                for pname, pty in params:
                    rparams.append(Param(pname, py_name(pname), resolver.resolve(pty)))
                rresult = resolver.resolve(result) if result is not None else None
                bad = [
                    _unsupported_in(p.type) for p in rparams
                ] + [_unsupported_in(rresult) if rresult is not None else None]
                unsupported = next((b for b in bad if b), None)
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


def _full_name(package: str, iface: str) -> str:
    pkg, _, version = package.partition("@")
    return f"{pkg}/{iface}" + (f"@{version}" if version else "")


def _unsupported_in(ty: WitType, depth: int = 0) -> str | None:
    """Why a value of ``ty`` cannot travel, if it cannot."""
    if depth > _MAX_DEPTH:
        return "a type nested too deeply"
    if isinstance(ty, Unsupported):
        return f"it uses {ty.text}: {ty.why}"
    children: list[WitType | None] = []
    if isinstance(ty, ListType):
        children = [ty.element]
    elif isinstance(ty, OptionType):
        children = [ty.inner]
    elif isinstance(ty, ResultType):
        children = [ty.ok, ty.err]
    elif isinstance(ty, TupleType):
        children = list(ty.items)
    elif isinstance(ty, MapType):
        children = [ty.key, ty.value]
    elif isinstance(ty, RecordType):
        children = [t for _, t in ty.fields]
    elif isinstance(ty, VariantType):
        children = [t for _, t in ty.cases]
    for child in children:
        if child is not None:
            why = _unsupported_in(child, depth + 1)
            if why:
                return why
    return None


class _Resolver:
    """Resolves the type names of one interface (its own, and those it uses)."""

    def __init__(self, doc: Document, ast: _InterfaceAst) -> None:
        self.doc = doc
        self.ast = ast
        self.cache: dict[str, WitType] = {}
        self.busy: set[str] = set()

    def named(self, name: str, depth: int = 0) -> WitType:
        if name in self.cache:
            return self.cache[name]
        if name in self.busy or depth > _MAX_DEPTH:
            raise WitError(f"type {name} of interface {self.ast.name} refers to itself")
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
        return _Resolver(self.doc, target).named(name, depth + 1)

    def resolve(self, expr: _TypeExpr, depth: int = 0) -> WitType:
        if depth > _MAX_DEPTH:
            raise WitError("a type nested too deeply")
        kind = expr[0]
        if kind == "name":
            name = expr[1]
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


def iter_types(ty: WitType) -> Iterator[WitType]:
    """``ty`` and every type inside it, outermost first."""
    yield ty
    if isinstance(ty, ListType):
        yield from iter_types(ty.element)
    elif isinstance(ty, OptionType):
        yield from iter_types(ty.inner)
    elif isinstance(ty, ResultType):
        for t in (ty.ok, ty.err):
            if t is not None:
                yield from iter_types(t)
    elif isinstance(ty, TupleType):
        for t in ty.items:
            yield from iter_types(t)
    elif isinstance(ty, MapType):
        yield from iter_types(ty.key)
        yield from iter_types(ty.value)
    elif isinstance(ty, RecordType):
        for _, t in ty.fields:
            yield from iter_types(t)
    elif isinstance(ty, VariantType):
        for _, t in ty.cases:
            if t is not None:
                yield from iter_types(t)
