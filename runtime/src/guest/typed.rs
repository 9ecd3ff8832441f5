//! The fast path into and out of a guest, for the signatures calls have most often: no
//! results, and no parameter, or one or two integers or strings (`set-value(v: s32)`,
//! `message(username: string, msg: string)`). Such functions are called through wasmtime's
//! typed API, and such imports are served with typed host functions, which skip the
//! dynamic path's per-call type checks and `Val` vectors; their arguments go straight
//! between CBOR bytes and Rust values.
//!
//! Any other signature takes the dynamic path (`Func::call`, `func_new`), which handles
//! every WIT type. Both paths encode and accept the same CBOR (`docs/wire.md`); when bytes
//! do not fit the fast path, the dynamic path reads them again and names the mismatch.

use ciborium_ll::Header;
use dhost_protocol::cbor::Cursor;
use wasmtime::AsContextMut;
use wasmtime::component::{ComponentNamedList, Func, Lift, Lower, Type, TypedFunc};

/// A parameter type of the fast path.
pub trait Arg: Sized {
    /// Whether the WIT type is this one.
    fn is(ty: &Type) -> bool;
    /// Appends the value as CBOR.
    fn encode(&self, out: &mut Vec<u8>);
    /// Reads the value, if the next item is one that fits.
    fn decode(cursor: &mut Cursor<'_>) -> Option<Self>;
    /// Steps over the next item; whether it fits (without making the value).
    fn fits(cursor: &mut Cursor<'_>) -> bool {
        Self::decode(cursor).is_some()
    }
}

fn push(out: &mut Vec<u8>, head: Header) {
    // Writing to a Vec cannot fail.
    let _ = ciborium_ll::Encoder::from(out).push(head);
}

macro_rules! integer_arg {
    ($($rust:ty = $wit:ident),*) => {$(
        impl Arg for $rust {
            fn is(ty: &Type) -> bool {
                matches!(ty, Type::$wit)
            }
            fn encode(&self, out: &mut Vec<u8>) {
                push(out, crate::value::int_head(i128::from(*self)));
            }
            fn decode(cursor: &mut Cursor<'_>) -> Option<Self> {
                cursor.int().ok()?.try_into().ok()
            }
        }
    )*};
}

integer_arg!(i32 = S32, u32 = U32, i64 = S64, u64 = U64);

impl Arg for String {
    fn is(ty: &Type) -> bool {
        matches!(ty, Type::String)
    }
    fn encode(&self, out: &mut Vec<u8>) {
        let _ = ciborium_ll::Encoder::from(out).text(self, None);
    }
    fn decode(cursor: &mut Cursor<'_>) -> Option<Self> {
        cursor.text().ok().map(str::to_string)
    }
    fn fits(cursor: &mut Cursor<'_>) -> bool {
        cursor.text().is_ok()
    }
}

/// A parameter list of the fast path: a tuple of [`Arg`]s.
pub trait Args: ComponentNamedList + Lift + Lower + Send + Sync + Sized + 'static {
    /// Whether the WIT parameter types are these.
    fn are(params: &[(String, Type)]) -> bool;
    /// Appends the arguments as one CBOR array.
    fn encode(&self, out: &mut Vec<u8>);
    /// Reads one CBOR array of arguments, if it fits exactly.
    fn decode(bytes: &[u8]) -> Option<Self>;
    /// Whether one CBOR array of arguments fits exactly (without making the values).
    fn fits(bytes: &[u8]) -> bool;
}

macro_rules! args_tuple {
    ($($name:ident),*) => {
        impl<$($name: Arg),*> Args for ($($name,)*)
        where
            ($($name,)*): ComponentNamedList + Lift + Lower + Send + Sync + 'static,
        {
            #[allow(unused_variables, unused_mut, non_snake_case)]
            fn are(params: &[(String, Type)]) -> bool {
                let mut types = params.iter().map(|(_, ty)| ty);
                $(let $name = types.next().is_some_and($name::is);)*
                true $(&& $name)* && types.next().is_none()
            }
            #[allow(non_snake_case)]
            fn encode(&self, out: &mut Vec<u8>) {
                let ($($name,)*) = self;
                push(out, Header::Array(Some(args_tuple!(@count $($name)*))));
                $($name.encode(out);)*
            }
            #[allow(unused_mut)]
            fn decode(bytes: &[u8]) -> Option<Self> {
                let mut cursor = Cursor::new(bytes);
                match cursor.head().ok()? {
                    Header::Array(Some(n)) if n == args_tuple!(@count $($name)*) => {}
                    _ => return None,
                }
                let args = ($($name::decode(&mut cursor)?,)*);
                cursor.is_empty().then_some(args)
            }
            #[allow(unused_mut)]
            fn fits(bytes: &[u8]) -> bool {
                let mut cursor = Cursor::new(bytes);
                match cursor.head() {
                    Ok(Header::Array(Some(n))) if n == args_tuple!(@count $($name)*) => {}
                    _ => return false,
                }
                true $(&& $name::fits(&mut cursor))* && cursor.is_empty()
            }
        }
    };
    (@count) => { 0 };
    (@count $head:ident $($rest:ident)*) => { 1 + args_tuple!(@count $($rest)*) };
}

args_tuple!();
args_tuple!(A);
args_tuple!(A, B);

/// An exported function with a fast-path signature, called with wasmtime's typed API.
#[derive(Clone, Copy)]
pub enum TypedExport {
    /// `f()`.
    Unit(TypedFunc<(), ()>),
    /// `f(s32)`.
    S32(TypedFunc<(i32,), ()>),
    /// `f(u32)`.
    U32(TypedFunc<(u32,), ()>),
    /// `f(s64)`.
    S64(TypedFunc<(i64,), ()>),
    /// `f(u64)`.
    U64(TypedFunc<(u64,), ()>),
    /// `f(string)`.
    Str(TypedFunc<(String,), ()>),
    /// `f(string, string)`.
    StrStr(TypedFunc<(String, String), ()>),
}

impl TypedExport {
    /// The typed form of `func`, whose parameters are `params` and results `results`, if
    /// its signature is one of the fast path's.
    pub fn of(
        func: Func,
        store: impl wasmtime::AsContext,
        params: &[(String, Type)],
        results: &[Type],
    ) -> Option<Self> {
        if !results.is_empty() {
            return None;
        }
        macro_rules! try_shape {
            ($($variant:ident($($t:ty),*)),*) => {$(
                if <($($t,)*) as Args>::are(params) {
                    return func.typed::<($($t,)*), ()>(&store).ok().map(TypedExport::$variant);
                }
            )*};
        }
        try_shape!(
            Unit(),
            S32(i32),
            U32(u32),
            S64(i64),
            U64(u64),
            Str(String),
            StrStr(String, String)
        );
        None
    }

    /// Calls the function with `args`, one CBOR array, running `start` on the store just
    /// before entering the guest: `None` when the bytes do not fit its parameters (the
    /// guest was not entered, `start` did not run: the dynamic path then says why), else
    /// the call's outcome.
    pub fn call<S: AsContextMut>(
        self,
        store: S,
        args: &[u8],
        start: impl FnOnce(&mut S),
    ) -> Option<Result<(), wasmtime::Error>> {
        fn run<P: Args, S: AsContextMut>(
            func: TypedFunc<P, ()>,
            mut store: S,
            args: &[u8],
            start: impl FnOnce(&mut S),
        ) -> Option<Result<(), wasmtime::Error>> {
            let params = P::decode(args)?;
            start(&mut store);
            Some(func.call(&mut store, params))
        }
        match self {
            TypedExport::Unit(f) => run(f, store, args, start),
            TypedExport::S32(f) => run(f, store, args, start),
            TypedExport::U32(f) => run(f, store, args, start),
            TypedExport::S64(f) => run(f, store, args, start),
            TypedExport::U64(f) => run(f, store, args, start),
            TypedExport::Str(f) => run(f, store, args, start),
            TypedExport::StrStr(f) => run(f, store, args, start),
        }
    }
}

/// The check of one CBOR array of arguments against `params`, when they are a fast-path
/// signature's (found once, for checking many calls); `None` for any other signature.
pub fn checker(params: &[(String, Type)]) -> Option<fn(&[u8]) -> bool> {
    macro_rules! try_shape {
        ($(($($t:ty),*)),*) => {$(
            if <($($t,)*) as Args>::are(params) {
                return Some(<($($t,)*) as Args>::fits);
            }
        )*};
    }
    try_shape!((), (i32), (u32), (i64), (u64), (String), (String, String));
    None
}

/// Defines `name` in `instance` as a typed host function when `params` (with no results)
/// is a fast-path signature: `send(store, args)` gets the arguments as one CBOR array
/// appended by `encode`. Returns false, defining nothing, for any other signature.
pub fn define_sender<T: 'static>(
    instance: &mut wasmtime::component::LinkerInstance<'_, T>,
    name: &str,
    params: &[(String, Type)],
    send: impl Fn(&mut T, &dyn Fn(&mut Vec<u8>)) -> anyhow::Result<()> + Clone + Send + Sync + 'static,
) -> anyhow::Result<bool> {
    macro_rules! try_shape {
        ($(($($t:ty),*)),*) => {$(
            if <($($t,)*) as Args>::are(params) {
                let send = send.clone();
                instance
                    .func_wrap(name, move |mut store, args: ($($t,)*)| {
                        send(store.data_mut(), &|out: &mut Vec<u8>| args.encode(out))
                            .map_err(wasmtime::Error::from_anyhow)
                    })
                    .map_err(anyhow::Error::from)?;
                return Ok(true);
            }
        )*};
    }
    try_shape!((), (i32), (u32), (i64), (u64), (String), (String, String));
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value;
    use wasmtime::component::Val;

    fn encoded<P: Args>(args: &P) -> Vec<u8> {
        let mut out = Vec::new();
        args.encode(&mut out);
        out
    }

    #[test]
    fn the_fast_path_encodes_as_the_dynamic_path_does() {
        let mut dynamic = Vec::new();
        value::encode_args(
            &[Val::String("ann".into()), Val::String("hi".into())],
            &mut dynamic,
        )
        .unwrap();
        assert_eq!(encoded(&("ann".to_string(), "hi".to_string())), dynamic);
        for n in [0i64, 23, -1, -24, -25, 1 << 40, i64::MIN, i64::MAX] {
            let mut dynamic = Vec::new();
            value::encode_args(&[Val::S64(n)], &mut dynamic).unwrap();
            assert_eq!(encoded(&(n,)), dynamic, "{n}");
            assert_eq!(<(i64,)>::decode(&dynamic), Some((n,)));
        }
        assert_eq!(encoded(&()), [0x80]);
    }

    #[test]
    fn arguments_that_do_not_fit_are_left_to_the_dynamic_path() {
        let two = encoded(&(1i64, 2i64));
        assert_eq!(<(i32,)>::decode(&two), None);
        assert_eq!(<(i32,)>::decode(&encoded(&(1i64 << 40,))), None);
        assert_eq!(<(u32,)>::decode(&encoded(&(-1i64,))), None);
        assert_eq!(<(String,)>::decode(&encoded(&(5i32,))), None);
        let mut trailing = encoded(&(5i32,));
        trailing.push(0);
        assert_eq!(<(i32,)>::decode(&trailing), None);
        assert_eq!(<(i32,)>::decode(&[]), None);
        assert!(!<(i32,)>::fits(&trailing) && !<(i32,)>::fits(&two));
        assert!(<(String, String)>::fits(&encoded(&(
            "a".to_string(),
            "b".to_string()
        ))));
        let string = || ("x".to_string(), Type::String);
        let fits = |params: &[(String, Type)], args: &[u8]| checker(params).map(|f| f(args));
        assert_eq!(fits(&[string()], &encoded(&("a".to_string(),))), Some(true));
        assert_eq!(fits(&[string()], &encoded(&(5i32,))), Some(false));
        assert_eq!(fits(&[("x".to_string(), Type::Bool)], &[0x81, 0xf5]), None);
    }

    #[test]
    fn signatures_are_recognised() {
        let p = |types: &[Type]| -> Vec<(String, Type)> {
            types.iter().map(|t| ("x".to_string(), t.clone())).collect()
        };
        assert!(<(i32,)>::are(&p(&[Type::S32])));
        assert!(!<(i32,)>::are(&p(&[Type::U32])));
        assert!(!<(i32,)>::are(&p(&[Type::S32, Type::S32])));
        assert!(<(String, String)>::are(&p(&[Type::String, Type::String])));
        assert!(<()>::are(&p(&[])));
        assert!(!<()>::are(&p(&[Type::Bool])));
    }
}
