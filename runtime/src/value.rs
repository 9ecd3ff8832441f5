//! Conversion between WIT values (wasmtime's [`Val`]) and the self-describing CBOR that
//! carries them on the wire.
//!
//! Encoding needs no type: a [`Val`] says what it is. Decoding is always checked against
//! the *receiving* guest's own WIT type, so a caller that knows no WIT (the CLI, a script)
//! can send plain CBOR and a mismatch is refused with a [`ValueError`] that names the
//! argument, the place inside it and what was wrong. The mapping is documented in
//! `docs/wire.md`:
//!
//! | WIT | CBOR |
//! |-----|------|
//! | bool, integers, floats | bool, integer, float (an integer is accepted for a float) |
//! | char, string | text (one character for a char) |
//! | `list<u8>` | byte string (an array of integers is accepted) |
//! | other lists, tuples, fixed-length lists | array |
//! | record | map from field name to value |
//! | variant | the case name as text, or a one-entry map `{case: payload}` |
//! | enum | the case name as text |
//! | option | null for `none`; the value for `some` (wrapped in a one-item array when the payload is itself an option) |
//! | result | `{"ok": value}` or `{"err": value}`, null when that side has no type |
//! | flags | array of the names of the flags that are set |
//! | map | map |
//! | resources, futures, streams | not sendable: refused |

use ciborium::value::{Integer, Value};
use ciborium_ll::Header;
use dhost_protocol::cbor::Cursor;
use std::fmt;
use thiserror::Error;
use wasmtime::component::{Type, Val};

/// A value that does not fit its WIT type, or cannot travel at all.
#[derive(Debug, Error, PartialEq)]
#[error("{}{reason}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct ValueError {
    /// Where in the value the problem is, such as `msg` or `point.x` or `items[3]`.
    pub path: String,
    /// What is wrong there.
    pub reason: String,
}

impl ValueError {
    fn new(reason: impl Into<String>) -> Self {
        ValueError {
            path: String::new(),
            reason: reason.into(),
        }
    }

    /// Prefixes the path with a field name or an index.
    fn within(mut self, segment: impl fmt::Display) -> Self {
        let segment = segment.to_string();
        self.path = match (self.path.is_empty(), self.path.starts_with('[')) {
            (true, _) => segment,
            (false, true) => format!("{segment}{}", self.path),
            (false, false) => format!("{segment}.{}", self.path),
        };
        self
    }
}

/// Encodes a value as CBOR. Fails only for values that cannot leave their guest
/// (resources, futures, streams).
pub fn to_cbor(val: &Val) -> Result<Value, ValueError> {
    Ok(match val {
        Val::Bool(b) => Value::Bool(*b),
        Val::S8(n) => Value::Integer((*n).into()),
        Val::U8(n) => Value::Integer((*n).into()),
        Val::S16(n) => Value::Integer((*n).into()),
        Val::U16(n) => Value::Integer((*n).into()),
        Val::S32(n) => Value::Integer((*n).into()),
        Val::U32(n) => Value::Integer((*n).into()),
        Val::S64(n) => Value::Integer((*n).into()),
        Val::U64(n) => Value::Integer((*n).into()),
        Val::Float32(f) => Value::Float(f64::from(*f)),
        Val::Float64(f) => Value::Float(*f),
        Val::Char(c) => Value::Text(c.to_string()),
        Val::String(s) => Value::Text(s.clone()),
        Val::List(items) if !items.is_empty() && items.iter().all(|v| matches!(v, Val::U8(_))) => {
            Value::Bytes(
                items
                    .iter()
                    .map(|v| if let Val::U8(b) = v { *b } else { 0 })
                    .collect(),
            )
        }
        Val::List(items) | Val::Tuple(items) | Val::FixedLengthList(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| to_cbor(v).map_err(|e| e.within(format!("[{i}]"))))
                .collect::<Result<_, _>>()?,
        ),
        Val::Record(fields) => Value::Map(
            fields
                .iter()
                .map(|(name, v)| {
                    Ok((
                        Value::Text(name.clone()),
                        to_cbor(v).map_err(|e| e.within(name))?,
                    ))
                })
                .collect::<Result<_, ValueError>>()?,
        ),
        Val::Variant(case, None) | Val::Enum(case) => Value::Text(case.clone()),
        Val::Variant(case, Some(payload)) => tagged(case, Some(payload))?,
        Val::Option(None) => Value::Null,
        Val::Option(Some(inner)) => match **inner {
            Val::Option(_) => Value::Array(vec![to_cbor(inner)?]),
            _ => to_cbor(inner)?,
        },
        Val::Result(Ok(payload)) => tagged("ok", payload.as_deref())?,
        Val::Result(Err(payload)) => tagged("err", payload.as_deref())?,
        Val::Flags(names) => Value::Array(names.iter().map(|n| Value::Text(n.clone())).collect()),
        Val::Map(entries) => Value::Map(
            entries
                .iter()
                .map(|(k, v)| Ok((to_cbor(k)?, to_cbor(v)?)))
                .collect::<Result<_, ValueError>>()?,
        ),
        Val::Resource(_) => return Err(ValueError::new("a resource cannot be sent")),
        Val::Future(_) | Val::Stream(_) | Val::ErrorContext(_) => {
            return Err(ValueError::new(
                "a future, stream or error-context cannot be sent",
            ));
        }
    })
}

/// A one-entry map `{name: payload}` (null for no payload).
fn tagged(name: &str, payload: Option<&Val>) -> Result<Value, ValueError> {
    let payload = match payload {
        Some(v) => to_cbor(v).map_err(|e| e.within(name))?,
        None => Value::Null,
    };
    Ok(Value::Map(vec![(Value::Text(name.to_string()), payload)]))
}

/// Decodes the arguments of a call against the parameters of the function that will run
/// it. The error names the argument.
pub fn args_from_cbor(args: Vec<Value>, params: &[(String, Type)]) -> Result<Vec<Val>, ValueError> {
    if args.len() != params.len() {
        let names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
        return Err(ValueError::new(format!(
            "expected {} argument{} ({}), got {}",
            params.len(),
            if params.len() == 1 { "" } else { "s" },
            names.join(", "),
            args.len()
        )));
    }
    args.into_iter()
        .zip(params)
        .map(|(arg, (name, ty))| from_cbor(arg, ty).map_err(|e| e.within(name)))
        .collect()
}

/// Decodes a call's arguments from one CBOR array, as bytes, against the parameters'
/// types. Scalars and strings are read straight from the bytes (the hot path); anything
/// else, and every mismatch, goes through [`args_from_cbor`], whose errors say what is
/// wrong.
pub fn args_from_cbor_bytes(
    bytes: &[u8],
    params: &[(String, Type)],
    out: &mut Vec<Val>,
) -> Result<(), ValueError> {
    out.clear();
    if read_scalars(bytes, params, out).is_none() {
        out.clear();
        let args = match ciborium::de::from_reader(bytes) {
            Ok(Value::Array(args)) => args,
            Ok(other) => return Err(mismatch("an array of arguments", &other)),
            Err(_) => return Err(ValueError::new("the arguments are not well-formed CBOR")),
        };
        out.extend(args_from_cbor(args, params)?);
    }
    Ok(())
}

/// Reads an array of scalars and strings matching `params` exactly; `None` for anything
/// else.
fn read_scalars(bytes: &[u8], params: &[(String, Type)], out: &mut Vec<Val>) -> Option<()> {
    let mut cursor = Cursor::new(bytes);
    match cursor.head().ok()? {
        Header::Array(Some(n)) if n == params.len() => {}
        _ => return None,
    }
    for (_, ty) in params {
        let val = match ty {
            Type::Bool => match cursor.head().ok()? {
                Header::Simple(20) => Val::Bool(false),
                Header::Simple(21) => Val::Bool(true),
                _ => return None,
            },
            Type::String => Val::String(cursor.text().ok()?.to_string()),
            ty => int_val(ty, cursor.int().ok()?)?,
        };
        out.push(val);
    }
    cursor.is_empty().then_some(())
}

/// An integer as a value of integer type `ty`, if it is one and the integer fits.
fn int_val(ty: &Type, n: i128) -> Option<Val> {
    Some(match ty {
        Type::S8 => Val::S8(n.try_into().ok()?),
        Type::U8 => Val::U8(n.try_into().ok()?),
        Type::S16 => Val::S16(n.try_into().ok()?),
        Type::U16 => Val::U16(n.try_into().ok()?),
        Type::S32 => Val::S32(n.try_into().ok()?),
        Type::U32 => Val::U32(n.try_into().ok()?),
        Type::S64 => Val::S64(n.try_into().ok()?),
        Type::U64 => Val::U64(n.try_into().ok()?),
        _ => return None,
    })
}

/// Encodes a call's arguments as one CBOR array onto the end of `out`: scalars and strings
/// straight to bytes, anything else through [`to_cbor`]. Fails for values that cannot
/// leave their guest; `out` is then as it was.
pub fn encode_args(args: &[Val], out: &mut Vec<u8>) -> Result<(), ValueError> {
    // Writing to a Vec cannot fail: the results of the writes are only the writer's.
    fn push(out: &mut Vec<u8>, head: Header) {
        let _ = ciborium_ll::Encoder::from(out).push(head);
    }
    let start = out.len();
    push(out, Header::Array(Some(args.len())));
    for arg in args {
        match *arg {
            Val::Bool(b) => push(out, Header::Simple(if b { 21 } else { 20 })),
            Val::S8(n) => push(out, int_head(n.into())),
            Val::U8(n) => push(out, int_head(n.into())),
            Val::S16(n) => push(out, int_head(n.into())),
            Val::U16(n) => push(out, int_head(n.into())),
            Val::S32(n) => push(out, int_head(n.into())),
            Val::U32(n) => push(out, int_head(n.into())),
            Val::S64(n) => push(out, int_head(n.into())),
            Val::U64(n) => push(out, int_head(n.into())),
            Val::String(ref s) => {
                let _ = ciborium_ll::Encoder::from(&mut *out).text(s, None);
            }
            _ => match to_cbor(arg) {
                Ok(value) => {
                    let _ = ciborium::ser::into_writer(&value, &mut *out);
                }
                Err(e) => {
                    out.truncate(start);
                    return Err(e);
                }
            },
        }
    }
    Ok(())
}

/// The CBOR head of an integer.
pub(crate) fn int_head(n: i128) -> Header {
    if n >= 0 {
        Header::Positive(n as u64)
    } else {
        Header::Negative((-1 - n) as u64)
    }
}

/// Decodes one value against its WIT type.
pub fn from_cbor(value: Value, ty: &Type) -> Result<Val, ValueError> {
    Ok(match ty {
        Type::Bool => match value {
            Value::Bool(b) => Val::Bool(b),
            other => return Err(mismatch("bool", &other)),
        },
        Type::S8 => Val::S8(integer(value, "s8")?),
        Type::U8 => Val::U8(integer(value, "u8")?),
        Type::S16 => Val::S16(integer(value, "s16")?),
        Type::U16 => Val::U16(integer(value, "u16")?),
        Type::S32 => Val::S32(integer(value, "s32")?),
        Type::U32 => Val::U32(integer(value, "u32")?),
        Type::S64 => Val::S64(integer(value, "s64")?),
        Type::U64 => Val::U64(integer(value, "u64")?),
        Type::Float32 => Val::Float32(float(value, "f32")? as f32),
        Type::Float64 => Val::Float64(float(value, "f64")?),
        Type::Char => match value {
            Value::Text(s) => {
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Val::Char(c),
                    _ => {
                        return Err(ValueError::new(format!(
                            "expected char, found text of {} characters",
                            s.chars().count()
                        )));
                    }
                }
            }
            other => return Err(mismatch("char", &other)),
        },
        Type::String => match value {
            Value::Text(s) => Val::String(s),
            other => return Err(mismatch("string", &other)),
        },
        Type::List(list) => {
            let elem = list.ty();
            match (value, &elem) {
                (Value::Bytes(bytes), Type::U8) => {
                    Val::List(bytes.into_iter().map(Val::U8).collect())
                }
                (Value::Array(items), _) => Val::List(elements(items, &elem)?),
                (other, _) => return Err(mismatch("list (array)", &other)),
            }
        }
        Type::FixedLengthList(list) => {
            let Value::Array(items) = value else {
                return Err(mismatch("fixed-length list (array)", &value));
            };
            let want = list.len() as usize;
            if items.len() != want {
                return Err(ValueError::new(format!(
                    "expected {want} items, found {}",
                    items.len()
                )));
            }
            Val::FixedLengthList(elements(items, &list.ty())?)
        }
        Type::Tuple(tuple) => {
            let Value::Array(items) = value else {
                return Err(mismatch("tuple (array)", &value));
            };
            let types: Vec<Type> = tuple.types().collect();
            if items.len() != types.len() {
                return Err(ValueError::new(format!(
                    "expected a tuple of {}, found {} items",
                    types.len(),
                    items.len()
                )));
            }
            Val::Tuple(
                items
                    .into_iter()
                    .zip(&types)
                    .enumerate()
                    .map(|(i, (v, t))| from_cbor(v, t).map_err(|e| e.within(format!("[{i}]"))))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::Record(record) => {
            let Value::Map(entries) = value else {
                return Err(mismatch("record (map)", &value));
            };
            let mut entries = text_keyed(entries, "record")?;
            let mut fields = Vec::with_capacity(record.fields().len());
            for field in record.fields() {
                let Some(at) = entries.iter().position(|(k, _)| k == field.name) else {
                    return Err(ValueError::new(format!("missing field `{}`", field.name)));
                };
                let (name, v) = entries.swap_remove(at);
                let val = from_cbor(v, &field.ty).map_err(|e| e.within(&name))?;
                fields.push((name, val));
            }
            if let Some((extra, _)) = entries.first() {
                return Err(ValueError::new(format!("unknown field `{extra}`")));
            }
            Val::Record(fields)
        }
        Type::Variant(variant) => {
            let (case, payload) = case_and_payload(value, "variant")?;
            let Some(found) = variant.cases().find(|c| c.name == case) else {
                let known: Vec<&str> = variant.cases().map(|c| c.name).collect();
                return Err(unknown_case("variant", &case, &known));
            };
            let payload = optional_payload(&case, payload, found.ty.as_ref())?;
            Val::Variant(case, payload)
        }
        Type::Enum(enum_ty) => match value {
            Value::Text(case) if enum_ty.names().any(|n| n == case) => Val::Enum(case),
            Value::Text(case) => {
                let known: Vec<&str> = enum_ty.names().collect();
                return Err(unknown_case("enum", &case, &known));
            }
            other => return Err(mismatch("enum (text)", &other)),
        },
        Type::Option(option) => {
            let inner = option.ty();
            match value {
                Value::Null => Val::Option(None),
                Value::Array(mut items) if matches!(inner, Type::Option(_)) => {
                    if items.len() != 1 {
                        return Err(ValueError::new(
                            "expected `some` of an option as a one-item array",
                        ));
                    }
                    let item = items.pop().unwrap_or(Value::Null);
                    Val::Option(Some(Box::new(from_cbor(item, &inner)?)))
                }
                _ if matches!(inner, Type::Option(_)) => {
                    return Err(ValueError::new(
                        "expected null or a one-item array for an option of an option",
                    ));
                }
                other => Val::Option(Some(Box::new(from_cbor(other, &inner)?))),
            }
        }
        Type::Result(result) => {
            let (case, payload) = case_and_payload(value, "result")?;
            match case.as_str() {
                "ok" => Val::Result(Ok(optional_payload("ok", payload, result.ok().as_ref())?)),
                "err" => Val::Result(Err(optional_payload(
                    "err",
                    payload,
                    result.err().as_ref(),
                )?)),
                _ => return Err(unknown_case("result", &case, &["ok", "err"])),
            }
        }
        Type::Flags(flags) => {
            let Value::Array(items) = value else {
                return Err(mismatch("flags (array of names)", &value));
            };
            let mut set = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::Text(name) if flags.names().any(|n| n == name) => {
                        if !set.contains(&name) {
                            set.push(name);
                        }
                    }
                    Value::Text(name) => {
                        let known: Vec<&str> = flags.names().collect();
                        return Err(unknown_case("flag", &name, &known));
                    }
                    other => return Err(mismatch("flag name (text)", &other)),
                }
            }
            Val::Flags(set)
        }
        Type::Map(map) => {
            let Value::Map(entries) = value else {
                return Err(mismatch("map", &value));
            };
            let (key_ty, value_ty) = (map.key(), map.value());
            Val::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| Ok((from_cbor(k, &key_ty)?, from_cbor(v, &value_ty)?)))
                    .collect::<Result<_, ValueError>>()?,
            )
        }
        Type::Own(_) | Type::Borrow(_) => {
            return Err(ValueError::new(
                "a resource cannot be received from the network",
            ));
        }
        Type::Future(_) | Type::Stream(_) | Type::ErrorContext => {
            return Err(ValueError::new(
                "a future, stream or error-context cannot be received from the network",
            ));
        }
    })
}

fn elements(items: Vec<Value>, ty: &Type) -> Result<Vec<Val>, ValueError> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| from_cbor(v, ty).map_err(|e| e.within(format!("[{i}]"))))
        .collect()
}

fn integer<T: TryFrom<i128>>(value: Value, wit: &str) -> Result<T, ValueError> {
    match value {
        Value::Integer(i) => {
            let wide = i128::from(i);
            T::try_from(wide).map_err(|_| ValueError::new(format!("{wide} does not fit in {wit}")))
        }
        other => Err(mismatch(wit, &other)),
    }
}

fn float(value: Value, wit: &str) -> Result<f64, ValueError> {
    match value {
        Value::Float(f) => Ok(f),
        Value::Integer(i) => Ok(i128::from(i) as f64),
        other => Err(mismatch(wit, &other)),
    }
}

/// The keys of a map, which must all be text.
fn text_keyed(
    entries: Vec<(Value, Value)>,
    what: &str,
) -> Result<Vec<(String, Value)>, ValueError> {
    entries
        .into_iter()
        .map(|(k, v)| match k {
            Value::Text(name) => Ok((name, v)),
            other => Err(ValueError::new(format!(
                "a {what} key must be text, found {}",
                kind(&other)
            ))),
        })
        .collect()
}

/// Reads a case: a bare name, or a one-entry map `{name: payload}`.
fn case_and_payload(value: Value, what: &str) -> Result<(String, Option<Value>), ValueError> {
    match value {
        Value::Text(case) => Ok((case, None)),
        Value::Map(entries) if entries.len() == 1 => {
            let mut entries = text_keyed(entries, what)?;
            let (case, payload) = entries.pop().unwrap_or((String::new(), Value::Null));
            Ok((case, Some(payload)))
        }
        other => Err(mismatch(
            &format!("{what} (a case name or a one-entry map)"),
            &other,
        )),
    }
}

fn optional_payload(
    case: &str,
    payload: Option<Value>,
    ty: Option<&Type>,
) -> Result<Option<Box<Val>>, ValueError> {
    match (payload, ty) {
        (None | Some(Value::Null), None) => Ok(None),
        (Some(_), None) => Err(ValueError::new(format!("case `{case}` has no payload"))),
        (None, Some(_)) => Err(ValueError::new(format!("case `{case}` needs a payload"))),
        (Some(v), Some(ty)) => Ok(Some(Box::new(
            from_cbor(v, ty).map_err(|e| e.within(case))?,
        ))),
    }
}

fn unknown_case(what: &str, case: &str, known: &[&str]) -> ValueError {
    ValueError::new(format!(
        "unknown {what} case `{case}` (expected one of: {})",
        known.join(", ")
    ))
}

fn mismatch(expected: &str, found: &Value) -> ValueError {
    ValueError::new(format!("expected {expected}, found {}", kind(found)))
}

/// A short description of a CBOR value, for error messages.
fn kind(value: &Value) -> String {
    match value {
        Value::Integer(i) => format!("integer {}", i128::from(*i)),
        Value::Bytes(b) => format!("byte string of {} bytes", b.len()),
        Value::Float(f) => format!("float {f}"),
        Value::Text(_) => "text".to_string(),
        Value::Bool(b) => format!("bool {b}"),
        Value::Null => "null".to_string(),
        Value::Tag(tag, _) => format!("tag {tag}"),
        Value::Array(a) => format!("array of {} items", a.len()),
        Value::Map(m) => format!("map of {} entries", m.len()),
        _ => "an unknown CBOR item".to_string(),
    }
}

/// An integer CBOR value, for tests and callers that build arguments by hand.
pub fn int(n: impl Into<Integer>) -> Value {
    Value::Integer(n.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::component::{Component, types::ComponentItem};
    use wasmtime::{Config, Engine};

    /// The parameter types of `f`, imported by a component that declares one parameter of
    /// every WIT type.
    fn all_types() -> Vec<(String, Type)> {
        let wat = r#"
            (component
              (type $rec0 (record (field "x" s32) (field "name" string)))
              (import "rec" (type $rec (eq $rec0)))
              (type $var0 (variant (case "none") (case "num" u32) (case "text" string)))
              (import "var" (type $var (eq $var0)))
              (type $en0 (enum "red" "green" "blue"))
              (import "en" (type $en (eq $en0)))
              (type $fl0 (flags "read" "write" "exec"))
              (import "fl" (type $fl (eq $fl0)))
              (type $f (func
                (param "b" bool)
                (param "s8" s8) (param "u8" u8) (param "s16" s16) (param "u16" u16)
                (param "s32" s32) (param "u32" u32) (param "s64" s64) (param "u64" u64)
                (param "f32" f32) (param "f64" f64)
                (param "c" char) (param "s" string)
                (param "bytes" (list u8)) (param "words" (list string))
                (param "rec" $rec) (param "var" $var) (param "en" $en) (param "fl" $fl)
                (param "opt" (option u32)) (param "optopt" (option (option u32)))
                (param "res" (result string (error u8))) (param "unit-res" (result))
                (param "tup" (tuple u8 string bool))
                (param "nested" (list (tuple $rec (option $en))))))
              (import "f" (func (type $f))))
        "#;
        let mut config = Config::new();
        config.wasm_component_model(true);
        let engine = Engine::new(&config).unwrap();
        let component = Component::new(&engine, wat).unwrap();
        let ty = component.component_type();
        let (_, item) = ty.imports(&engine).find(|(name, _)| *name == "f").unwrap();
        let ComponentItem::ComponentFunc(f) = item.ty else {
            panic!("not a function")
        };
        f.params().map(|(n, t)| (n.to_string(), t)).collect()
    }

    fn ty(name: &str) -> Type {
        all_types()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
            .unwrap()
    }

    fn sample() -> Vec<Val> {
        let rec = |x, name: &str| {
            Val::Record(vec![
                ("x".into(), Val::S32(x)),
                ("name".into(), Val::String(name.into())),
            ])
        };
        vec![
            Val::Bool(true),
            Val::S8(-128),
            Val::U8(255),
            Val::S16(-32768),
            Val::U16(65535),
            Val::S32(i32::MIN),
            Val::U32(u32::MAX),
            Val::S64(i64::MIN),
            Val::U64(u64::MAX),
            Val::Float32(1.5),
            Val::Float64(-2.25e300),
            Val::Char('é'),
            Val::String("héllo".into()),
            Val::List(vec![Val::U8(0), Val::U8(7), Val::U8(255)]),
            Val::List(vec![Val::String("a".into()), Val::String("".into())]),
            rec(-3, "pt"),
            Val::Variant("num".into(), Some(Box::new(Val::U32(9)))),
            Val::Enum("green".into()),
            Val::Flags(vec!["read".into(), "exec".into()]),
            Val::Option(Some(Box::new(Val::U32(4)))),
            Val::Option(Some(Box::new(Val::Option(None)))),
            Val::Result(Err(Some(Box::new(Val::U8(2))))),
            Val::Result(Ok(None)),
            Val::Tuple(vec![Val::U8(1), Val::String("t".into()), Val::Bool(false)]),
            Val::List(vec![
                Val::Tuple(vec![
                    rec(1, "a"),
                    Val::Option(Some(Box::new(Val::Enum("red".into())))),
                ]),
                Val::Tuple(vec![rec(2, "b"), Val::Option(None)]),
            ]),
        ]
    }

    #[test]
    fn every_type_round_trips() {
        let params = all_types();
        let vals = sample();
        assert_eq!(params.len(), vals.len());
        let cbor: Vec<Value> = vals.iter().map(|v| to_cbor(v).unwrap()).collect();
        // Through bytes too, as on the wire.
        let mut bytes = Vec::new();
        ciborium::ser::into_writer(&Value::Array(cbor), &mut bytes).unwrap();
        let Value::Array(cbor) = ciborium::de::from_reader(bytes.as_slice()).unwrap() else {
            panic!()
        };
        let back = args_from_cbor(cbor, &params).unwrap();
        assert_eq!(back, vals);
    }

    #[test]
    fn other_cases_round_trip() {
        for (name, val) in [
            ("var", Val::Variant("none".into(), None)),
            (
                "var",
                Val::Variant("text".into(), Some(Box::new(Val::String("t".into())))),
            ),
            ("opt", Val::Option(None)),
            ("optopt", Val::Option(None)),
            (
                "optopt",
                Val::Option(Some(Box::new(Val::Option(Some(Box::new(Val::U32(1))))))),
            ),
            (
                "res",
                Val::Result(Ok(Some(Box::new(Val::String("ok".into()))))),
            ),
            ("unit-res", Val::Result(Err(None))),
            ("bytes", Val::List(vec![])),
            ("fl", Val::Flags(vec![])),
            ("f64", Val::Float64(f64::INFINITY)),
        ] {
            let t = ty(name);
            assert_eq!(
                from_cbor(to_cbor(&val).unwrap(), &t).unwrap(),
                val,
                "{name}"
            );
        }
    }

    #[test]
    fn the_encoding_is_the_documented_one() {
        assert_eq!(
            to_cbor(&Val::List(vec![Val::U8(1), Val::U8(2)])).unwrap(),
            Value::Bytes(vec![1, 2])
        );
        assert_eq!(
            to_cbor(&Val::Record(vec![("x".into(), Val::S32(1))])).unwrap(),
            Value::Map(vec![(Value::Text("x".into()), int(1))])
        );
        assert_eq!(
            to_cbor(&Val::Enum("red".into())).unwrap(),
            Value::Text("red".into())
        );
        assert_eq!(
            to_cbor(&Val::Result(Ok(None))).unwrap(),
            Value::Map(vec![(Value::Text("ok".into()), Value::Null)])
        );
        assert_eq!(
            to_cbor(&Val::Option(Some(Box::new(Val::U32(3))))).unwrap(),
            int(3)
        );
    }

    #[test]
    fn untyped_callers_are_understood() {
        // What a JSON caller would send.
        assert_eq!(from_cbor(int(2), &ty("f64")).unwrap(), Val::Float64(2.0));
        assert_eq!(
            from_cbor(Value::Array(vec![int(1), int(2)]), &ty("bytes")).unwrap(),
            Val::List(vec![Val::U8(1), Val::U8(2)])
        );
        assert_eq!(
            from_cbor(
                Value::Map(vec![(Value::Text("none".into()), Value::Null)]),
                &ty("var")
            )
            .unwrap(),
            Val::Variant("none".into(), None)
        );
        // Record fields in any order.
        assert_eq!(
            from_cbor(
                Value::Map(vec![
                    (Value::Text("name".into()), Value::Text("n".into())),
                    (Value::Text("x".into()), int(5)),
                ]),
                &ty("rec")
            )
            .unwrap(),
            Val::Record(vec![
                ("x".into(), Val::S32(5)),
                ("name".into(), Val::String("n".into()))
            ])
        );
    }

    fn error(value: Value, name: &str) -> String {
        let params: Vec<(String, Type)> =
            all_types().into_iter().filter(|(n, _)| n == name).collect();
        args_from_cbor(vec![value], &params)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn mismatches_are_refused_with_the_place_and_the_reason() {
        let text = |s: &str| Value::Text(s.into());
        let map = |k: &str, v: Value| Value::Map(vec![(text(k), v)]);
        for (value, name, want) in [
            (text("x"), "b", "b: expected bool, found text"),
            (int(128), "s8", "s8: 128 does not fit in s8"),
            (int(-1), "u64", "u64: -1 does not fit in u64"),
            (int(70000), "u16", "u16: 70000 does not fit in u16"),
            (
                Value::Bool(true),
                "f32",
                "f32: expected f32, found bool true",
            ),
            (
                text("ab"),
                "c",
                "c: expected char, found text of 2 characters",
            ),
            (
                text(""),
                "c",
                "c: expected char, found text of 0 characters",
            ),
            (int(1), "s", "s: expected string, found integer 1"),
            (
                text("x"),
                "bytes",
                "bytes: expected list (array), found text",
            ),
            (
                Value::Array(vec![int(1), int(256)]),
                "bytes",
                "bytes[1]: 256 does not fit in u8",
            ),
            (
                Value::Array(vec![int(1)]),
                "words",
                "words[0]: expected string, found integer 1",
            ),
            (map("x", int(1)), "rec", "rec: missing field `name`"),
            (
                Value::Map(vec![
                    (text("x"), int(1)),
                    (text("name"), text("n")),
                    (text("z"), int(0)),
                ]),
                "rec",
                "rec: unknown field `z`",
            ),
            (
                Value::Map(vec![(text("x"), text("1")), (text("name"), text("n"))]),
                "rec",
                "rec.x: expected s32, found text",
            ),
            (
                Value::Map(vec![(int(1), int(1))]),
                "rec",
                "rec: a record key must be text, found integer 1",
            ),
            (
                text("nope"),
                "var",
                "var: unknown variant case `nope` (expected one of: none, num, text)",
            ),
            (text("num"), "var", "var: case `num` needs a payload"),
            (
                map("none", int(1)),
                "var",
                "var: case `none` has no payload",
            ),
            (
                map("num", text("x")),
                "var",
                "var.num: expected u32, found text",
            ),
            (
                text("pink"),
                "en",
                "en: unknown enum case `pink` (expected one of: red, green, blue)",
            ),
            (int(0), "en", "en: expected enum (text), found integer 0"),
            (
                Value::Array(vec![text("fly")]),
                "fl",
                "fl: unknown flag case `fly` (expected one of: read, write, exec)",
            ),
            (text("x"), "opt", "opt: expected u32, found text"),
            (
                int(1),
                "optopt",
                "optopt: expected null or a one-item array for an option of an option",
            ),
            (
                map("maybe", Value::Null),
                "res",
                "res: unknown result case `maybe` (expected one of: ok, err)",
            ),
            (
                map("err", int(300)),
                "res",
                "res.err: 300 does not fit in u8",
            ),
            (
                Value::Array(vec![int(1), text("t")]),
                "tup",
                "tup: expected a tuple of 3, found 2 items",
            ),
            (
                Value::Array(vec![Value::Array(vec![map("x", int(1)), Value::Null])]),
                "nested",
                "nested[0][0]: missing field `name`",
            ),
        ] {
            assert_eq!(error(value, name), want);
        }
    }

    #[test]
    fn argument_counts_are_checked() {
        let params: Vec<(String, Type)> = all_types().into_iter().take(2).collect();
        assert_eq!(
            args_from_cbor(vec![Value::Bool(true)], &params)
                .unwrap_err()
                .to_string(),
            "expected 2 arguments (b, s8), got 1"
        );
    }
}
