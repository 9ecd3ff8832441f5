//! Runs of calls: many calls to one function in one crossing of the component boundary,
//! which costs more than a small call does. A datagram may carry thousands of calls to one
//! function; a guest that takes them a run at a time, or sends them so, pays that crossing
//! once per run instead of once per call.
//!
//! **Taking runs.** A guest whose world exports `dstc:node/run-events` gets every run of
//! calls to its functions in `on-run(function, calls)`, and reads the calls with
//! [`each_call`]:
//!
//! ```ignore
//! impl exports::dstc::node::run_events::Guest for Stress {
//!     fn on_run(function: String, calls: Vec<u8>) -> bool {
//!         match function.as_str() {
//!             "dhost:stress/sink#set-value" => {
//!                 dhost_guest::runs::each_call(&calls, |args| Stress::set_value(args.i32()));
//!                 true
//!             }
//!             _ => false, // one by one: the node calls the export itself
//!         }
//!     }
//! }
//! ```
//!
//! The node has checked every call against the function's parameters before: reading a
//! call as other types than its function's is a bug, and traps the guest.
//!
//! **Sending runs.** A guest whose world imports `dstc:node/runs` sends calls to one of its
//! imported functions without results through a [`Run`], which packs them and sends them
//! in one crossing every 16 KiB (and when flushed or dropped):
//!
//! ```ignore
//! let mut run = dhost_guest::runs::Run::new("dhost:stress/sink#set-value");
//! for v in 0..1_000_000 {
//!     run.push((v,));
//! }
//! run.flush(); // before any other call, which would otherwise overtake the run's
//! ```
//!
//! The arguments travel as CBOR (the node's wire format, `docs/wire.md`): one array per
//! call, of the parameters in order.

/// The node's `dstc:node/runs` interface, for a guest whose world imports it to share
/// these bindings: `with: { "dstc:node/runs": dhost_guest::runs::bindings }`.
pub use crate::bindings::dstc::node::runs as bindings;
use bindings as host;

/// How many bytes of calls a [`Run`] packs before it sends them.
pub const RUN_BYTES: usize = 16 * 1024;

/// A CBOR head: major type and argument.
fn head(out: &mut Vec<u8>, major: u8, value: u64) {
    let major = major << 5;
    match value {
        0..=23 => out.push(major | value as u8),
        24..=0xff => out.extend_from_slice(&[major | 24, value as u8]),
        0x100..=0xffff => {
            out.push(major | 25);
            out.extend_from_slice(&(value as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(major | 26);
            out.extend_from_slice(&(value as u32).to_be_bytes());
        }
        _ => {
            out.push(major | 27);
            out.extend_from_slice(&value.to_be_bytes());
        }
    }
}

/// A value a call can carry, as CBOR.
pub trait Arg {
    /// Appends the value.
    fn encode(&self, out: &mut Vec<u8>);
}

macro_rules! unsigned_arg {
    ($($t:ty),*) => {$(
        impl Arg for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                head(out, 0, u64::from(*self));
            }
        }
    )*};
}

macro_rules! signed_arg {
    ($($t:ty),*) => {$(
        impl Arg for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                let v = i64::from(*self);
                if v < 0 {
                    head(out, 1, (-1 - v) as u64);
                } else {
                    head(out, 0, v as u64);
                }
            }
        }
    )*};
}

unsigned_arg!(u8, u16, u32, u64);
signed_arg!(i8, i16, i32, i64);

impl Arg for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(if *self { 0xf5 } else { 0xf4 });
    }
}

impl Arg for str {
    fn encode(&self, out: &mut Vec<u8>) {
        head(out, 3, self.len() as u64);
        out.extend_from_slice(self.as_bytes());
    }
}

impl Arg for String {
    fn encode(&self, out: &mut Vec<u8>) {
        self.as_str().encode(out);
    }
}

impl<T: Arg + ?Sized> Arg for &T {
    fn encode(&self, out: &mut Vec<u8>) {
        (**self).encode(out);
    }
}

/// The arguments of one call: a tuple of [`Arg`]s, in the function's parameter order.
pub trait Args {
    /// Appends them as one CBOR array.
    fn encode(&self, out: &mut Vec<u8>);
}

macro_rules! args_tuple {
    ($n:expr; $($name:ident),*) => {
        impl<$($name: Arg),*> Args for ($($name,)*) {
            #[allow(non_snake_case, unused_variables)]
            fn encode(&self, out: &mut Vec<u8>) {
                head(out, 4, $n);
                let ($($name,)*) = self;
                $($name.encode(out);)*
            }
        }
    };
}

args_tuple!(0;);
args_tuple!(1; A);
args_tuple!(2; A, B);
args_tuple!(3; A, B, C);
args_tuple!(4; A, B, C, D);
args_tuple!(5; A, B, C, D, E);
args_tuple!(6; A, B, C, D, E, F);

/// Calls to one imported function, packed and sent in one crossing at a time (see the
/// module's documentation). What is left is sent when it is dropped.
pub struct Run {
    function: String,
    calls: Vec<u8>,
}

impl Run {
    /// A run of calls to `function`, an id such as `dhost:stress/sink#set-value`.
    pub fn new(function: impl Into<String>) -> Self {
        Run {
            function: function.into(),
            calls: Vec::with_capacity(RUN_BYTES + 64),
        }
    }

    /// Adds a call with `args`; sends the run once it holds [`RUN_BYTES`].
    pub fn push(&mut self, args: impl Args) {
        args.encode(&mut self.calls);
        if self.calls.len() >= RUN_BYTES {
            self.flush();
        }
    }

    /// Sends the calls added so far.
    pub fn flush(&mut self) {
        if !self.calls.is_empty() {
            host::send_run(&self.function, &self.calls);
            self.calls.clear();
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Runs `each` on every call of `calls` (a run delivered to `run-events.on-run`), in
/// order; what `each` leaves of a call's arguments unread is skipped.
pub fn each_call(calls: &[u8], mut each: impl FnMut(&mut CallArgs<'_>)) {
    let mut reader = Reader { bytes: calls };
    while !reader.bytes.is_empty() {
        let (major, n) = reader.head();
        assert_eq!(major, 4, "a call's arguments are not an array");
        let mut args = CallArgs {
            reader: Reader {
                bytes: reader.bytes,
            },
            left: n,
        };
        each(&mut args);
        for _ in 0..args.left {
            args.reader.skip();
        }
        reader = args.reader;
    }
}

/// The arguments of one call, read in the function's parameter order. Reading a value of
/// another type than the call's (which the node checked against the function) traps.
pub struct CallArgs<'a> {
    reader: Reader<'a>,
    left: u64,
}

impl<'a> CallArgs<'a> {
    fn next(&mut self) -> &mut Reader<'a> {
        assert!(self.left > 0, "a call has fewer arguments than were read");
        self.left -= 1;
        &mut self.reader
    }

    /// The next argument, an integer.
    pub fn i64(&mut self) -> i64 {
        match self.next().head() {
            (0, v) => i64::try_from(v).expect("an integer argument out of range"),
            (1, v) => -1 - i64::try_from(v).expect("an integer argument out of range"),
            _ => panic!("an argument is not an integer"),
        }
    }

    /// The next argument, an `s32`.
    pub fn i32(&mut self) -> i32 {
        i32::try_from(self.i64()).expect("an argument out of the range of s32")
    }

    /// The next argument, a `u64`.
    pub fn u64(&mut self) -> u64 {
        match self.next().head() {
            (0, v) => v,
            _ => panic!("an argument is not an unsigned integer"),
        }
    }

    /// The next argument, a `u32`.
    pub fn u32(&mut self) -> u32 {
        u32::try_from(self.u64()).expect("an argument out of the range of u32")
    }

    /// The next argument, a `bool`.
    pub fn bool(&mut self) -> bool {
        let reader = self.next();
        let byte = reader.bytes[0];
        reader.bytes = &reader.bytes[1..];
        match byte {
            0xf5 => true,
            0xf4 => false,
            _ => panic!("an argument is not a bool"),
        }
    }

    /// The next argument, a `string`.
    pub fn str(&mut self) -> &'a str {
        let reader = self.next();
        match reader.head() {
            (3, len) => {
                let (text, rest) = reader.bytes.split_at(len as usize);
                reader.bytes = rest;
                std::str::from_utf8(text).expect("a string argument is not UTF-8")
            }
            _ => panic!("an argument is not a string"),
        }
    }
}

/// A cursor over CBOR bytes the node checked: well-formed, definite lengths or not.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    /// The next head: major type and argument (`u64::MAX` for an indefinite length).
    fn head(&mut self) -> (u8, u64) {
        let first = self.bytes[0];
        let (major, info) = (first >> 5, first & 0x1f);
        let size = match info {
            0..=23 => {
                self.bytes = &self.bytes[1..];
                return (major, info.into());
            }
            24 => 1,
            25 => 2,
            26 => 4,
            27 => 8,
            31 => {
                self.bytes = &self.bytes[1..];
                return (major, u64::MAX);
            }
            _ => panic!("malformed CBOR in a run of calls"),
        };
        let mut value = 0u64;
        for &b in &self.bytes[1..=size] {
            value = value << 8 | u64::from(b);
        }
        self.bytes = &self.bytes[1 + size..];
        (major, value)
    }

    /// Steps over one item.
    fn skip(&mut self) {
        let (major, n) = self.head();
        let indefinite = n == u64::MAX;
        match major {
            2 | 3 if indefinite => self.skip_until_break(),
            2 | 3 => self.bytes = &self.bytes[n as usize..],
            4 if indefinite => self.skip_until_break(),
            4 => (0..n).for_each(|_| self.skip()),
            5 if indefinite => self.skip_until_break(),
            5 => (0..2 * n).for_each(|_| self.skip()),
            6 => self.skip(),
            _ => {} // integers, simple values and floats: the head was all
        }
    }

    fn skip_until_break(&mut self) {
        while self.bytes[0] != 0xff {
            self.skip();
        }
        self.bytes = &self.bytes[1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_read_back_as_written() {
        let mut bytes = Vec::new();
        (7i32,).encode(&mut bytes);
        (-1_000_000i32,).encode(&mut bytes);
        ("ann", "hi there").encode(&mut bytes);
        (u64::MAX, true, i32::MIN).encode(&mut bytes);
        let mut seen = Vec::new();
        each_call(&bytes, |args| {
            seen.push(match args.left {
                1 => args.i32().to_string(),
                2 => format!("{}:{}", args.str(), args.str()),
                _ => format!("{}:{}:{}", args.u64(), args.bool(), args.i32()),
            })
        });
        assert_eq!(
            seen,
            [
                "7",
                "-1000000",
                "ann:hi there",
                &format!("{}:true:{}", u64::MAX, i32::MIN)
            ]
        );
        // What a reader leaves unread is stepped over.
        let mut firsts = Vec::new();
        each_call(&bytes, |args| {
            if args.left == 2 {
                firsts.push(args.str().to_string());
            }
        });
        assert_eq!(firsts, ["ann"]);
    }

    #[test]
    fn heads_take_the_shortest_form() {
        let mut out = Vec::new();
        (23u32, 24u32, 256u32, 65_536u32, -24i32, -25i32).encode(&mut out);
        assert_eq!(
            out,
            [
                0x86, 0x17, 0x18, 0x18, 0x19, 0x01, 0x00, 0x1a, 0x00, 0x01, 0x00, 0x00, 0x37, 0x38,
                0x18
            ]
        );
    }
}
