"""The WIT reader, on hand-written texts and on what `dhost inspect` prints."""

from __future__ import annotations

import pytest

from dhost import wit
from dhost.errors import WitError

TEXT = """
/// A package of every kind of type.
package test:all@1.2.0;

interface base {
    type id = u64;
    record point { x: s32, y: s32 }
}

interface every {
    use base.{id, point as pos};
    use other:pkg/things.{thing};

    /// A shape.
    variant shape { circle(f64), square(tuple<f32, f32>), nothing, }
    enum color { red, %green, dark-blue }
    flags perms { read, write, exec }
    resource file { constructor(path: string); read: func(n: u32) -> list<u8>; open: static func() -> file; }
    record %record { %type: color, items: list<option<pos>>, fixed: list<u8, 4>, m: map<string, id> }

    /// Draws it.
    draw: func(s: shape, c: color, p: perms) -> result<id, string>;
    nested: func(o: option<option<bool>>) -> result<_, list<tuple<char, string>>>;
    multi: func() -> (a: u8, b: s8);
    none: func() -> result;
    in-place: func(r: %record);
    takes-file: func(f: borrow<file>);
    gives-file: func() -> own<file>;
    uses-thing: func(t: thing);
    @since(version = 1.2.0)
    gated: async func(from: string, float32: float32) -> future<u8>;
}

world w {
    import every;
    export base;
    include other:pkg/w;
}

/* a /* nested */ comment */
package other:pkg {
    interface things { enum thing { one, two } }
}
"""


def test_every_kind_of_type_resolves() -> None:
    doc = wit.parse(TEXT)
    assert doc.interface_names() == ["other:pkg/things", "test:all/base@1.2.0", "test:all/every@1.2.0"]
    every = doc.interface("test:all/every")  # the one version of the package
    assert every.name == "test:all/every@1.2.0"
    f = every.functions
    draw = f["draw"]
    assert draw.function_id == "test:all/every@1.2.0#draw"
    assert draw.doc == "Draws it."
    assert draw.signature() == "draw: func(s: shape, c: color, p: perms) -> result<u64, string>"
    shape, color, perms = (p.type for p in draw.params)
    assert isinstance(shape, wit.VariantType)
    assert shape.cases[0] == ("circle", wit.Primitive("f64"))
    assert shape.cases[1] == ("square", wit.TupleType((wit.Primitive("f32"), wit.Primitive("f32"))))
    assert shape.cases[2] == ("nothing", None)
    assert isinstance(color, wit.EnumType) and color.cases == ("red", "green", "dark-blue")
    assert isinstance(perms, wit.FlagsType) and perms.names == ("read", "write", "exec")
    nested = f["nested"]
    assert str(nested.params[0].type) == "option<option<bool>>"
    assert str(nested.result) == "result<_, list<tuple<char, string>>>"
    assert str(f["multi"].result) == "tuple<u8, s8>"
    assert str(f["none"].result) == "result"
    record = f["in-place"].params[0].type
    assert isinstance(record, wit.RecordType)
    assert [name for name, _ in record.fields] == ["type", "items", "fixed", "m"]
    items = dict(record.fields)["items"]
    assert isinstance(items, wit.ListType)
    pos = items.element.inner  # type: ignore[attr-defined]
    assert isinstance(pos, wit.RecordType) and pos.name == "point"
    assert dict(record.fields)["fixed"] == wit.ListType(wit.Primitive("u8"), 4)
    assert str(dict(record.fields)["m"]) == "map<string, u64>"
    assert f["in-place"].py_name == "in_place"
    assert f["uses-thing"].params[0].type.cases == ("one", "two")  # type: ignore[attr-defined]
    assert all(f[n].unsupported is None for n in ("draw", "nested", "multi", "none", "in-place", "uses-thing"))


def test_resources_futures_and_streams_are_refused_with_the_reason() -> None:
    every = wit.parse(TEXT).interface("test:all/every@1.2.0")
    assert "resource" in (every.functions["takes-file"].unsupported or "")
    assert "resource" in (every.functions["gives-file"].unsupported or "")
    gated = every.functions["gated"]
    assert "future" in (gated.unsupported or "")
    assert [p.py_name for p in gated.params] == ["from_", "float32"]
    assert gated.params[1].type == wit.Primitive("f32")


def test_a_missing_interface_or_used_type_is_named() -> None:
    doc = wit.parse(TEXT)
    with pytest.raises(WitError, match="defines no interface test:all/nothing"):
        doc.interface("test:all/nothing")
    with pytest.raises(WitError, match="not an interface name"):
        doc.interface("store")
    text = "package a:b; interface i { use c:d/e.{t}; f: func(x: t); g: func(y: nope); h: func(); }"
    i = wit.parse(text).interface("a:b/i")
    assert "c:d/e, which the WIT text does not define" in (i.functions["f"].unsupported or "")
    assert "defines no type nope" in (i.functions["g"].unsupported or "")
    assert i.functions["h"].unsupported is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("package a:b; interface i { f: func(x: u8) }", "expected `;`"),
        ("package a:b; interface i { f: func(x: list<u8) ; }", "expected `>`"),
        ("package a:b; interface i {", "expected `}`"),
        ("interface i {}", "before any `package`"),
        ("package a:b; interface i { f: func(x: $); }", "unexpected character"),
        ("package a:b; /* open", "unterminated comment"),
        ("package a:b; interface i { type t = option<u8, u8>; }", "option takes 1"),
    ],
)
def test_bad_text_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(WitError, match=message):
        wit.parse(text)


def test_deep_nesting_is_bounded() -> None:
    text = "package a:b; interface i { type t = " + "list<" * 500 + "u8" + ">" * 500 + "; }"
    with pytest.raises(WitError):
        wit.parse(text)


def test_what_dhost_inspect_prints(inspected: dict[str, str]) -> None:
    for name, text in inspected.items():
        doc = wit.parse(text)
        assert doc.interface_names(), name
    kv = wit.parse(inspected["kv"])
    admin = kv.interface("dhost:kv/admin")
    count = admin.functions["count"]
    assert str(count.result) == "result<u32, call-error>"
    error = count.result.err  # type: ignore[union-attr]
    assert isinstance(error, wit.VariantType)
    assert [c for c, _ in error.cases][:2] == ["no-server", "timeout"]
    hostile = wit.parse(inspected["hostile"])
    attacks = hostile.interface("dhost:hostile/attacks")
    assert attacks.functions["busy"].signature() == "busy: func(ms: u32)"
    # The WASI interfaces of the same text: records, flags, resources.
    types = hostile.interface("wasi:filesystem/types@0.2.6")
    assert types.functions == {}
    assert isinstance(types.types["descriptor-flags"], wit.FlagsType)
    stat = types.types["descriptor-stat"]
    assert isinstance(stat, wit.RecordType) and stat.fields[0][0] == "type"
    clock = hostile.interface("wasi:clocks/wall-clock@0.2.6")
    assert str(clock.functions["now"].result) == "datetime"


@pytest.fixture(scope="module")
def inspected() -> dict[str, str]:
    from conftest import DHOST, GUESTS, inspect_wit

    if not DHOST.exists():
        pytest.skip("dhost is not built")
    return {g: inspect_wit(g) for g in ("kv", "hostile", "chat", "ticker") if (GUESTS / f"{g}.wasm").exists()}


def _chain(n: int) -> str:
    """Named types that share their parts: t{n} spelled out has 2^(n+1) - 1 nodes."""
    types = "".join(f"type t{k} = tuple<t{k - 1}, t{k - 1}>;\n" for k in range(1, n + 1))
    return (
        f"package a:b; interface i {{ type t0 = u8;\n{types}"
        f"big: func(x: t{n}) -> option<t{n}>; small: func(x: t2) -> t1; }}"
    )


def test_shared_types_are_walked_once() -> None:
    import time

    from dhost.proxy import InterfaceProxy

    start = time.monotonic()
    i = wit.parse(_chain(22)).interface("a:b/i")
    big, small = i.functions["big"], i.functions["small"]
    proxy = InterfaceProxy(None, i)  # type: ignore[arg-type]
    doc, text = proxy.big.__doc__ or "", repr(proxy.big)
    assert time.monotonic() - start < 3.0
    assert "more than 100000 parts" in (big.unsupported or "")
    assert small.unsupported is None
    assert small.signature() == "small: func(x: tuple<tuple<u8, u8>, tuple<u8, u8>>) -> tuple<u8, u8>"
    # Texts are cut, not spelled out.
    assert len(big.signature()) <= wit.MAX_SIGNATURE + 3 and big.signature().endswith("...")
    assert len(str(big.params[0].type)) <= wit.MAX_SIGNATURE + 3
    assert len(doc) < 2 * wit.MAX_SIGNATURE and len(text) < 2 * wit.MAX_SIGNATURE
    with pytest.raises(WitError, match="more than 100000 parts"):
        proxy.big(None)


def test_a_signature_too_long_is_unsupported() -> None:
    fields = ", ".join(f"f{k}: tuple<u8, u8>" for k in range(2000))
    text = "package a:b; interface i { f: func(" + fields + "); }"
    f = wit.parse(text).interface("a:b/i").functions["f"]
    assert f.unsupported == f"its signature is longer than {wit.MAX_SIGNATURE} characters"


def test_uses_across_interfaces_are_resolved_once() -> None:
    import time

    parts = ["package a:b;", "interface i0 { type t = u8; }"]
    for k in range(1, 20):
        parts.append(f"interface i{k} {{ use i{k - 1}.{{t as a, t as b}}; type t = tuple<a, b>; }}")
    parts.append("interface top { use i19.{t}; f: func(x: t); }")
    start = time.monotonic()
    top = wit.parse("\n".join(parts)).interface("a:b/top")
    assert time.monotonic() - start < 3.0
    assert "more than 100000 parts" in (top.functions["f"].unsupported or "")
    # A cycle through `use` is named, not followed.
    cyclic = "package a:b; interface x { use y.{u}; type t = list<u>; } interface y { use x.{t}; type u = option<t>; f: func(v: u); }"
    assert "refers to itself" in (wit.parse(cyclic).interface("a:b/y").functions["f"].unsupported or "")


def test_the_number_of_type_expressions_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wit, "MAX_TYPE_NODES", 50)
    text = "package a:b; interface i { " + "".join(f"type t{k} = u8; " for k in range(60)) + "}"
    with pytest.raises(WitError, match="more than 50 type expressions"):
        wit.parse(text)
    fine = "package a:b; interface i { " + "".join(f"type t{k} = u8; " for k in range(40)) + "}"
    assert len(wit.parse(fine).interface("a:b/i").types) == 40


def test_python_names_of_keywords() -> None:
    assert wit.py_name("from") == "from_"
    assert wit.py_name("read-file") == "read_file"
    assert wit.py_name("%class") == "class_"
    assert wit.py_name("match") == "match"  # a soft keyword is a fine identifier


# Bogus WIT, as a node (or something posing as one) may describe an interface: two
# parameters, fields or cases of one name (in WIT, or once in Python: `a-b` and `%a-b`).
BOGUS = {
    "f: func(x: u8, x: u8);": "the parameters of f name x twice",
    "f: func(a-b: u8, %a-b: string);": "the parameters of f name a-b twice",
    "record r { a: u8, a: u8 } f: func(x: r);": "record r name a twice",
    "record r { %from: u8, from: u8 } f: func() -> r;": "record r name from twice",
    "variant v { a, a(u8) } f: func(x: v);": "variant v name a twice",
    "enum e { a, b, a } f: func(x: e);": "enum e name a twice",
    "flags g { r, r } f: func(x: g);": "flags g name r twice",
}


@pytest.mark.parametrize("body, message", BOGUS.items())
def test_bogus_wit_raises_the_clients_own_errors(body: str, message: str) -> None:
    from dhost.errors import DhostError
    from dhost.proxy import InterfaceProxy

    interface = wit.parse(f"package a:b; interface i {{ {body} }}").interface("a:b/i")
    assert message in (interface.functions["f"].unsupported or "")
    # A proxy of it is made, and its function says why it cannot be called: a WitError,
    # never Python's own ValueError or TypeError.
    proxy = InterfaceProxy(None, interface)  # type: ignore[arg-type]
    with pytest.raises(WitError, match=message):
        proxy.f(1, 2)
    # Every failure of the client is one of its own.
    for cls in (WitError,):
        assert issubclass(cls, DhostError)


def test_mutated_wit_raises_nothing_but_the_clients_errors() -> None:
    import random

    from dhost import values
    from dhost.errors import DhostError
    from dhost.proxy import InterfaceProxy

    rng = random.Random(23)
    pieces = ["{", "}", "(", ")", "<", ">", ";", ":", ",", "%", "-", " x", "u8", "list<", "record r", "func", "a-b", "%a-b"]
    for _ in range(2000):
        text = list(TEXT)
        for _ in range(rng.randint(1, 5)):
            at = rng.randrange(len(text) + 1)
            if rng.random() < 0.5:
                del text[at : at + rng.randint(1, 6)]
            else:
                text[at:at] = list(rng.choice(pieces))
        try:
            document = wit.parse("".join(text))
            for name in document.interface_names():
                for fn in InterfaceProxy(None, document.interface(name)):  # type: ignore[arg-type]
                    for result in (None, [1], {"ok": 1}, "x", {"a": [1]}):
                        try:
                            fn._decode(result, None)
                        except DhostError:
                            pass
        except DhostError:
            pass
    assert issubclass(values.ValueMismatch, DhostError)
