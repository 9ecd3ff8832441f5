"""WIT values <-> Python values, both ways, and every check on the way."""

from __future__ import annotations

import dataclasses
import enum
import math

import cbor2
import pytest

from dhost import wit
from dhost.values import Err, Ok, Some, ValueMismatch, Variant, from_plain, from_wire, to_plain, to_wire

TEXT = """
package t:v;
interface i {
    record point { x: s32, y-coord: s32 }
    variant shape { circle(f64), square(point), empty }
    enum color { red, dark-blue }
    flags perms { read, write, exec }
    type bytes = list<u8>;
    f-point: func(p: point);
    f-shape: func(s: shape);
    f-color: func(c: color);
    f-perms: func(p: perms);
    f-bytes: func(b: bytes);
    f-fixed: func(b: list<u16, 3>);
    f-opt: func(o: option<string>);
    f-opt2: func(o: option<option<u8>>);
    f-res: func(r: result<u32, string>);
    f-res-empty: func(r: result<_, color>);
    f-tuple: func(t: tuple<bool, char, f32>);
    f-map: func(m: map<string, list<s8>>);
    f-list: func(l: list<point>);
}
"""
I = wit.parse(TEXT).interface("t:v/i")


def ty(function: str) -> wit.WitType:
    return I.functions[function].params[0].type


def roundtrip(value: object, t: wit.WitType) -> object:
    """Encodes, sends through CBOR, and decodes."""
    wire = cbor2.loads(cbor2.dumps(to_wire(value, t)))
    return from_wire(wire, t)


INTEGERS = [
    ("s8", -128, 127),
    ("u8", 0, 255),
    ("s16", -32768, 32767),
    ("u16", 0, 65535),
    ("s32", -(2**31), 2**31 - 1),
    ("u32", 0, 2**32 - 1),
    ("s64", -(2**63), 2**63 - 1),
    ("u64", 0, 2**64 - 1),
]


@pytest.mark.parametrize("name, low, high", INTEGERS)
def test_every_integer_width_is_checked_both_ways(name: str, low: int, high: int) -> None:
    t = wit.Primitive(name)
    for n in (low, high, 0 if low == 0 else -1):
        assert roundtrip(n, t) == n
    for n in (low - 1, high + 1):
        with pytest.raises(ValueMismatch, match=f"{n} is out of range for {name}"):
            to_wire(n, t)
        with pytest.raises(ValueMismatch, match="out of range"):
            from_wire(n, t)
    for bad in (True, 1.0, "1", None):
        with pytest.raises(ValueMismatch, match=f"expected {name}"):
            to_wire(bad, t)


def test_primitives() -> None:
    assert roundtrip(True, wit.Primitive("bool")) is True
    with pytest.raises(ValueMismatch):
        to_wire(1, wit.Primitive("bool"))
    assert roundtrip(2, wit.Primitive("f64")) == 2.0
    assert roundtrip(1.5, wit.Primitive("f32")) == 1.5
    assert math.isnan(roundtrip(float("nan"), wit.Primitive("f64")))  # type: ignore[arg-type]
    with pytest.raises(ValueMismatch, match="out of range for f32"):
        to_wire(1e39, wit.Primitive("f32"))
    assert roundtrip("é", wit.Primitive("char")) == "é"
    with pytest.raises(ValueMismatch, match="2 characters"):
        to_wire("ab", wit.Primitive("char"))
    assert roundtrip("text ✓", wit.Primitive("string")) == "text ✓"
    with pytest.raises(ValueMismatch, match="lone surrogate"):
        to_wire("\ud800", wit.Primitive("string"))
    with pytest.raises(ValueMismatch, match="expected string"):
        to_wire(b"bytes", wit.Primitive("string"))


def test_records_become_dataclasses_and_take_dicts_and_objects() -> None:
    t = ty("f-point")
    assert to_wire({"x": 1, "y-coord": 2}, t) == {"x": 1, "y-coord": 2}
    assert to_wire({"x": 1, "y_coord": 2}, t) == {"x": 1, "y-coord": 2}
    value = roundtrip({"x": 1, "y_coord": -2}, t)
    assert dataclasses.is_dataclass(value)
    assert type(value).__name__ == "Point"
    assert (value.x, value.y_coord) == (1, -2)  # type: ignore[attr-defined]
    assert to_wire(value, t) == {"x": 1, "y-coord": -2}  # the dataclass goes back in

    @dataclasses.dataclass
    class Mine:
        x: int
        y_coord: int

    assert to_wire(Mine(3, 4), t) == {"x": 3, "y-coord": 4}
    with pytest.raises(ValueMismatch, match="missing field `y-coord`"):
        to_wire({"x": 1}, t)
    with pytest.raises(ValueMismatch, match="unknown field `z`"):
        to_wire({"x": 1, "y-coord": 2, "z": 3}, t)
    with pytest.raises(ValueMismatch, match=r"^x: 2147483648 is out of range for s32"):
        to_wire({"x": 2**31, "y-coord": 2}, t)
    with pytest.raises(ValueMismatch, match="unknown field `z`"):
        from_wire({"x": 1, "y-coord": 2, "z": 3}, t)


def test_variants_enums_and_flags() -> None:
    s = ty("f-shape")
    assert to_wire(Variant("circle", 2.0), s) == {"circle": 2.0}
    assert to_wire("empty", s) == "empty"
    assert to_wire({"square": {"x": 1, "y-coord": 2}}, s) == {"square": {"x": 1, "y-coord": 2}}
    assert roundtrip(Variant("empty"), s) == Variant("empty")
    assert roundtrip(Variant("circle", 1), s) == Variant("circle", 1.0)
    square = roundtrip(Variant("square", {"x": 5, "y-coord": 6}), s)
    assert square.case == "square" and square.value.x == 5  # type: ignore[attr-defined]
    with pytest.raises(ValueMismatch, match="no case `triangle`"):
        to_wire("triangle", s)
    with pytest.raises(ValueMismatch, match="carries no value"):
        to_wire(Variant("empty", 1), s)
    with pytest.raises(ValueMismatch, match=r"^square.x: expected s32"):
        to_wire(Variant("square", {"x": "a", "y-coord": 1}), s)
    assert from_wire({"empty": None}, s) == Variant("empty")

    c = ty("f-color")
    assert roundtrip("dark-blue", c) == "dark-blue"
    assert to_wire("dark_blue", c) == "dark-blue"

    class Color(enum.Enum):
        RED = "red"

    assert to_wire(Color.RED, c) == "red"
    with pytest.raises(ValueMismatch, match="no case `green`"):
        to_wire("green", c)

    p = ty("f-perms")
    assert roundtrip({"read", "exec"}, p) == frozenset({"read", "exec"})
    assert to_wire(["read", "read"], p) == ["read"]
    assert roundtrip([], p) == frozenset()
    with pytest.raises(ValueMismatch, match="no flag `delete`"):
        to_wire(["delete"], p)
    with pytest.raises(ValueMismatch, match="a set of names"):
        to_wire("read", p)


def test_lists_bytes_and_tuples() -> None:
    b = ty("f-bytes")
    assert to_wire(b"\x00\xff", b) == b"\x00\xff"
    assert to_wire([1, 2], b) == b"\x01\x02"
    assert to_wire(bytearray(b"ab"), b) == b"ab"
    assert roundtrip(b"xyz", b) == b"xyz"
    assert from_wire([1, 2], b) == b"\x01\x02"
    with pytest.raises(ValueMismatch, match=r"^\[1\]: 256 is out of range for u8"):
        to_wire([1, 256], b)
    fixed = ty("f-fixed")
    assert roundtrip([1, 2, 3], fixed) == [1, 2, 3]
    with pytest.raises(ValueMismatch, match="expected 3 items, found 2"):
        to_wire([1, 2], fixed)
    t = ty("f-tuple")
    assert roundtrip((True, "c", 0.5), t) == (True, "c", 0.5)
    with pytest.raises(ValueMismatch, match="a tuple of 3"):
        to_wire((True, "c"), t)
    points = ty("f-list")
    with pytest.raises(ValueMismatch, match=r"^\[1\].x: expected s32"):
        to_wire([{"x": 1, "y-coord": 1}, {"x": None, "y-coord": 1}], points)
    m = ty("f-map")
    assert roundtrip({"a": [-1, 2]}, m) == {"a": [-1, 2]}
    with pytest.raises(ValueMismatch, match="out of range for s8"):
        to_wire({"a": [200]}, m)


def test_options_and_results() -> None:
    o = ty("f-opt")
    assert to_wire(None, o) is None
    assert roundtrip("x", o) == "x"
    assert to_wire(Some("x"), o) == "x"
    o2 = ty("f-opt2")
    assert to_wire(None, o2) is None
    assert to_wire(Some(None), o2) == [None]
    assert to_wire(Some(Some(3)), o2) == [3]
    assert roundtrip(Some(None), o2) == Some(None)
    assert roundtrip(Some(Some(3)), o2) == Some(3)
    with pytest.raises(ValueMismatch, match="option of an option"):
        to_wire(3, o2)
    r = ty("f-res")
    assert to_wire(Ok(1), r) == {"ok": 1}
    assert to_wire(Err("no"), r) == {"err": "no"}
    assert to_wire({"err": "no"}, r) == {"err": "no"}
    assert roundtrip(Ok(7), r) == Ok(7)
    assert roundtrip(Err("bad"), r) == Err("bad")
    with pytest.raises(ValueMismatch, match=r"^ok: -1 is out of range for u32"):
        to_wire(Ok(-1), r)
    with pytest.raises(ValueMismatch, match="Ok"):
        to_wire(1, r)
    e = ty("f-res-empty")
    assert to_wire(Ok(), e) == {"ok": None}
    assert roundtrip(Err("red"), e) == Err("red")
    with pytest.raises(ValueMismatch, match="carries no value"):
        to_wire(Ok(1), e)


def test_a_call_error_comes_back_as_a_variant_in_an_err() -> None:
    text = """
    package dstc:node { interface calls { variant call-error { no-server(string), timeout(string) } } }
    package dhost:kv { interface admin { use dstc:node/calls.{call-error}; count: func() -> result<u32, call-error>; } }
    """
    count = wit.parse(text).interface("dhost:kv/admin").functions["count"]
    assert count.result is not None
    got = from_wire({"err": {"timeout": "too slow"}}, count.result)
    assert got == Err(Variant("timeout", "too slow"))
    assert from_wire({"ok": 3}, count.result) == Ok(3)
    with pytest.raises(ValueMismatch, match="no case `exploded`"):
        from_wire({"err": {"exploded": "x"}}, count.result)
    with pytest.raises(ValueMismatch, match="ok or err"):
        from_wire({"maybe": 1}, count.result)


def test_resources_cannot_be_sent() -> None:
    t = wit.Unsupported("own<file>", "a resource cannot leave its guest")
    with pytest.raises(ValueMismatch, match="cannot be sent"):
        to_wire(1, t)


def test_plain_values_without_a_type() -> None:
    @dataclasses.dataclass
    class P:
        a: int

    value = [Ok(1), Err("e"), Some(None), Variant("c"), Variant("d", 2), {1, 2}, (1, 2), P(3), b"x"]
    assert to_plain(value) == [{"ok": 1}, {"err": "e"}, [None], "c", {"d": 2}, [1, 2], [1, 2], {"a": 3}, b"x"]
    assert from_plain((1, (2, {"k": (3,)}))) == [1, [2, {"k": [3]}]]


def test_a_fixed_length_list_of_u8_is_sent_as_an_array() -> None:
    """runtime/src/value.rs takes a byte string for `list<u8>` alone: a fixed-length list is
    an array, whatever its elements."""
    i = wit.parse("package t:f; interface i { f: func(a: list<u8, 3>, b: list<u8>); }").interface("t:f/i")
    fixed, free = (p.type for p in i.functions["f"].params)
    assert to_wire(b"abc", fixed) == [97, 98, 99]
    assert to_wire(bytearray(b"abc"), fixed) == [97, 98, 99]
    assert to_wire([1, 2, 3], fixed) == [1, 2, 3]
    assert cbor2.dumps(to_wire(b"abc", fixed)) == cbor2.dumps([97, 98, 99])
    with pytest.raises(ValueMismatch, match="expected 3 items, found 2"):
        to_wire(b"ab", fixed)
    # What a node sends back (an array) is bytes here, as for any list<u8>.
    assert from_wire([97, 98, 99], fixed) == b"abc"
    assert roundtrip(b"xyz", fixed) == b"xyz"
    # A list<u8> without a length still goes as a byte string.
    assert to_wire(b"abc", free) == b"abc"
    assert to_wire([1, 2], free) == b"\x01\x02"


def test_a_float_out_of_range_from_the_network_is_a_mismatch() -> None:
    with pytest.raises(ValueMismatch, match="out of range for f64"):
        from_wire(2**2000, wit.Primitive("f64"))
    with pytest.raises(ValueMismatch, match="out of range for f32"):
        to_wire(2**2000, wit.Primitive("f32"))


def test_plain_values_that_have_no_cbor_form_name_the_place() -> None:
    with pytest.raises(ValueMismatch, match=r"^\[1\]: a set whose items cannot be ordered"):
        to_plain(["ok", {1, "a"}])
    with pytest.raises(ValueMismatch, match=r"^\['k'\]\.ok: int .* does not fit in a CBOR integer"):
        to_plain({"k": Ok(2**70)})
    with pytest.raises(ValueMismatch, match="has no CBOR form"):
        to_plain([object()])
    with pytest.raises(ValueMismatch, match="nested too deeply"):
        deep: list[object] = []
        for _ in range(1000):
            deep = [deep]
        to_plain(deep)
    # Tuple keys are CBOR arrays; keys whose plain form cannot be hashed are refused.
    assert to_plain({(1, "x"): 2, frozenset({3, 1}): 4}) == {(1, "x"): 2, (1, 3): 4}
    assert cbor2.loads(cbor2.dumps(to_plain({(1, 2): 3}))) == {(1, 2): 3}
    with pytest.raises(ValueMismatch, match=r"^\[K2\(a=1\)\]: the map key .* has no hashable CBOR form"):
        to_plain({K2(1): 2})


def test_untyped_arguments_without_a_cbor_form_are_bad_arguments() -> None:
    import dhost
    from dhost.client import _plain

    with pytest.raises(dhost.BadArguments, match=r"^argument 2: \[0\]: a set whose items"):
        _plain([{1, "a"}], 1)
    with pytest.raises(dhost.BadArguments, match="no hashable CBOR form"):
        _plain({K2(1): 2}, 0)


@dataclasses.dataclass(frozen=True)
class K2:
    a: int


def test_plain_values_from_the_network_are_bounded() -> None:
    deep: object = 1
    for _ in range(250):
        deep = [deep]
    with pytest.raises(ValueMismatch, match="nested too deeply"):
        from_plain(deep)
    assert from_plain([[[1]]]) == [[[1]]]
