//! The body of the `cbor_to_wit` fuzz target, shared with `tests/fuzz_corpora.rs`: CBOR
//! from the network decoded against WIT types (`dhost::value`), the types of wit/ and
//! every other WIT type, taken from the component in `cbor_to_wit.wat` by the host's own
//! `World::of`. The first byte of an input picks a [`Case`], the rest is the CBOR:
//!
//! - a function's parameters: the bytes are one argument array, as a call arrives. The
//!   hot path (`args_from_cbor_bytes`), the path of calls over TCP (`args_from_cbor`, on
//!   the array as values) and wasmtime's typed fast path (`guest::typed::Args`, for the
//!   signatures it takes) must agree; arguments that decode are encoded again
//!   (`encode_args`) and decode to the same;
//! - one type (a parameter's, or a function's result, as a reply carries it): the bytes
//!   are one CBOR item (`from_cbor`); a value that decodes goes back through `to_cbor`
//!   and CBOR bytes and decodes to the same.

use ciborium::Value;
use dhost::cbor::MAX_NESTING;
use dhost::guest::typed::Args;
use dhost::guest::world::World;
use dhost::value::{self, ValueError};
use std::sync::OnceLock;
use wasmtime::component::{Component, Type, Val};
use wasmtime::{Config, Engine};

/// What the CBOR of an input is decoded against.
pub(crate) struct Case {
    /// Whose type: `function` (its parameters), `function(param)` or `function -> result`.
    pub what: String,
    /// The type.
    pub decode: Decode,
}

/// How the CBOR of an input is decoded.
pub(crate) enum Decode {
    /// As a function's arguments, from one CBOR array.
    Args(Vec<(String, Type)>),
    /// As one value of a type.
    One(Type),
}

/// Every case, in the order of the functions in `cbor_to_wit.wat`: the input's first
/// byte, modulo their number, picks one.
pub(crate) fn cases() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .wasm_component_model_map(true)
            .wasm_component_model_fixed_length_lists(true);
        let engine = Engine::new(&config).expect("a wasmtime engine");
        let component = Component::new(&engine, include_str!("cbor_to_wit.wat"))
            .unwrap_or_else(|e| panic!("cbor_to_wit.wat: {e:?}"));
        let world = World::of(&component, &engine);
        let mut cases = Vec::new();
        for function in world.imports.iter().flat_map(|i| &i.functions) {
            cases.push(Case {
                what: function.id.clone(),
                decode: Decode::Args(function.params.clone()),
            });
            for (name, ty) in &function.params {
                cases.push(Case {
                    what: format!("{}({name})", function.id),
                    decode: Decode::One(ty.clone()),
                });
            }
            for ty in &function.results {
                cases.push(Case {
                    what: format!("{} -> result", function.id),
                    decode: Decode::One(ty.clone()),
                });
            }
        }
        assert!(cases.len() <= 256, "one byte picks a case");
        cases
    })
}

/// Runs one input; panics if a decoder panics, or the paths or the round trips disagree.
pub(crate) fn run(data: &[u8]) {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let cases = cases();
    let case = &cases[usize::from(pick) % cases.len()];
    match &case.decode {
        Decode::Args(params) => check_args(bytes, params, &case.what),
        Decode::One(ty) => check_one(bytes, ty, &case.what),
    }
}

fn check_args(bytes: &[u8], params: &[(String, Type)], what: &str) {
    let mut vals = Vec::new();
    let decoded = value::args_from_cbor_bytes(bytes, params, &mut vals);
    let as_values = match ciborium::de::from_reader::<Value, _>(bytes) {
        Ok(Value::Array(args)) => Some(value::args_from_cbor(args, params)),
        _ => None,
    };
    match (&decoded, &as_values) {
        (Ok(()), Some(Ok(from_values))) => assert_eq!(&vals, from_values),
        (Err(_), None | Some(Err(_))) => {}
        _ => panic!("{what}: from bytes: {decoded:?} {vals:?}, from values: {as_values:?}"),
    }

    let ok = decoded.as_ref().map(drop);
    typed::<()>(bytes, params, ok, &vals, |()| vec![]);
    typed::<(i32,)>(bytes, params, ok, &vals, |(v,)| vec![Val::S32(v)]);
    typed::<(u32,)>(bytes, params, ok, &vals, |(v,)| vec![Val::U32(v)]);
    typed::<(i64,)>(bytes, params, ok, &vals, |(v,)| vec![Val::S64(v)]);
    typed::<(u64,)>(bytes, params, ok, &vals, |(v,)| vec![Val::U64(v)]);
    typed::<(String,)>(bytes, params, ok, &vals, |(v,)| vec![Val::String(v)]);
    typed::<(String, String)>(bytes, params, ok, &vals, |(a, b)| {
        vec![Val::String(a), Val::String(b)]
    });

    if decoded.is_err() {
        return;
    }
    let mut encoded = Vec::new();
    value::encode_args(&vals, &mut encoded)
        .unwrap_or_else(|e| panic!("{what}: arguments from the network cannot be sent: {e}"));
    let mut again = Vec::new();
    value::args_from_cbor_bytes(&encoded, params, &mut again)
        .unwrap_or_else(|e| panic!("{what}: {vals:?} encoded as {encoded:02x?}: {e}"));
    assert_eq!(again, vals, "{what}: encoded as {encoded:02x?}");
}

/// Where the typed fast path takes `params`, what it decodes, the dynamic path decodes
/// too, to the same values, and both encode them the same.
fn typed<P: Args>(
    bytes: &[u8],
    params: &[(String, Type)],
    decoded: Result<(), &ValueError>,
    vals: &[Val],
    to_vals: fn(P) -> Vec<Val>,
) {
    if !P::are(params) {
        return;
    }
    let Some(args) = P::decode(bytes) else {
        return;
    };
    assert_eq!(
        decoded,
        Ok(()),
        "the typed path decodes what the dynamic one refuses"
    );
    let mut typed_encoding = Vec::new();
    args.encode(&mut typed_encoding);
    assert_eq!(to_vals(args), vals);
    let mut dynamic_encoding = Vec::new();
    value::encode_args(vals, &mut dynamic_encoding).expect("arguments can be sent");
    assert_eq!(typed_encoding, dynamic_encoding);
}

fn check_one(bytes: &[u8], ty: &Type, what: &str) {
    // As a reply's result arrives: one CBOR item, nested no deeper than frames may be.
    let Ok(item) = ciborium::de::from_reader_with_recursion_limit::<Value, _>(bytes, MAX_NESTING)
    else {
        return;
    };
    let Ok(val) = value::from_cbor(item, ty) else {
        return;
    };
    let back = value::to_cbor(&val)
        .unwrap_or_else(|e| panic!("{what}: a value from the network cannot be sent: {e}"));
    let mut encoded = Vec::new();
    ciborium::ser::into_writer(&back, &mut encoded).expect("CBOR into a Vec");
    let item: Value = ciborium::de::from_reader(encoded.as_slice())
        .unwrap_or_else(|e| panic!("{what}: {back:?} encoded as {encoded:02x?}: {e}"));
    assert_eq!(
        value::from_cbor(item, ty),
        Ok(val),
        "{what}: encoded as {encoded:02x?}"
    );
}
