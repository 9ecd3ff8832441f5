//! The seeds of the fuzz corpora: for each target, a handful of valid, meaningful inputs
//! made by dhost's own encoders (datagrams, TCP frames, the arguments of every function
//! and a value of every result of `cbor_to_wit`) or taken from its docs (the jail policy of docs/jail.md).
//! `tests/fuzz_corpora.rs` checks that they still decode, and its ignored test
//! `write_seeds` writes them into `fuzz/corpus/<target>/seed-*` (after a change of a
//! format, so that the fuzzers start from inputs that reach past the first check).

use crate::cbor_to_wit::{Decode, cases};
use bytes::{Bytes, BytesMut};
use ciborium::Value;
use dhost::mailbox::functions::{READ_FUNCTION, WRITE_FUNCTION};
use dhost::modules::protocol::ModuleRequest;
use dhost::modules::{Digest, Publication};
use dhost::outcome::{CallFailure, FailureKind};
use dhost::rpc::frame::{self, Handshake};
use dhost::value;
use dhost::wire::{
    self, Announce, Batcher, Position, Presence, Protection, RefusedCounts, Status, StreamCounts,
};
use tokio_util::codec::Encoder as _;
use wasmtime::component::{Type, Val};

/// A named input.
pub(crate) type Seed = (String, Vec<u8>);

/// The seeds of `target`.
pub(crate) fn seeds(target: &str) -> Vec<Seed> {
    match target {
        "datagram" => datagram(),
        "tcp_frame" => tcp_frame(),
        "mailbox_text" => mailbox_text(),
        "cbor_to_wit" => cbor_to_wit(),
        "jail_policy" => jail_policy(),
        "sealing" => sealing(),
        "module_loading" => module_loading(),
        _ => panic!("no fuzz target {target}"),
    }
}

fn named(name: &str, bytes: impl Into<Vec<u8>>) -> Seed {
    (name.to_string(), bytes.into())
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn encoded(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(value, &mut out).expect("CBOR into a Vec");
    out
}

const SENDER: u64 = 0x5eed_0000_0000_0001;

/// The sequenced datagrams of a run of calls to `function`, numbered from 1.
fn calls(first: u64, function: &str, calls: &[Vec<Value>]) -> Vec<u8> {
    let mut batcher = Batcher::new(SENDER, wire::MAX_DATAGRAM, true);
    let args: Vec<Vec<u8>> = calls
        .iter()
        .map(|args| encoded(&Value::Array(args.clone())))
        .collect();
    batcher.push_calls(first, function, args.iter().map(Vec::as_slice), |e| {
        panic!("{e}")
    });
    let mut datagrams = batcher.take();
    assert_eq!(datagrams.len(), 1);
    let mut datagram = datagrams.remove(0);
    wire::stamp(&mut datagram, 1);
    datagram
}

/// A control datagram of these frames, each opened by the sender's position as a node
/// sends them.
fn control(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut batcher = Batcher::new(SENDER, wire::MAX_DATAGRAM, false);
    let mut position = Vec::new();
    wire::encode_position(Position { next: 3, oldest: 1 }, &mut position);
    for frame in std::iter::once(&position).chain(frames) {
        batcher.push(frame).expect("a frame fits");
    }
    batcher.take().remove(0)
}

fn datagram() -> Vec<Seed> {
    let encode_frame = |encode: &dyn Fn(&mut Vec<u8>)| {
        let mut out = Vec::new();
        encode(&mut out);
        out
    };
    let announce = Announce {
        presence: Presence {
            name: "node-a".to_string(),
            uptime_ms: 1500,
            functions: vec!["dhost:chat/chat#message".to_string()],
            tcp: Some("127.0.0.1:40935".parse().expect("an address")),
            links: vec![("node-b".to_string(), 2)],
        },
        streams: vec![StreamCounts {
            peer: "node-b".to_string(),
            received: 10,
            repaired: 1,
            lost: 0,
        }],
        refused: vec![RefusedCounts {
            source: "10.0.0.9:5000".to_string(),
            unauthenticated: 3,
            replayed: 1,
        }],
        modules: vec![Publication {
            name: "kv".to_string(),
            digest: Some(Digest([7; 32])),
            size: 4096,
            published_at: 1_700_000_000_000,
            publisher: "ann".to_string(),
        }],
    };
    let status = Status {
        stream: 0x0123_4567_89ab_cdef,
        delivered: 42,
        window: 1 << 20,
        missing: vec![(42, 42), (44, 50)],
    };
    // A datagram as a keyed node seals it (its tag is not the key's: the gate refuses it,
    // the decoders read it), with a run written as a definite-length array and a frame
    // of a kind to come.
    let mut batcher = Batcher::new(SENDER, wire::MAX_DATAGRAM, true);
    let run = encoded(&Value::Array(vec![
        Value::Integer(0.into()),
        Value::Integer(5.into()),
        text("dhost:kv/store#put"),
        Value::Array(vec![text("k"), text("v")]),
        Value::Array(vec![text("k2"), text("v2")]),
    ]));
    let later = encoded(&Value::Array(vec![Value::Integer(9.into()), text("later")]));
    batcher.push(&run).expect("a frame fits");
    batcher.push(&later).expect("a frame fits");
    let mut sealed = batcher.take().remove(0);
    wire::stamp(&mut sealed, 9);
    let header_len = wire::own_header_len(&sealed);
    let header = &mut sealed[..header_len];
    wire::seal_header(
        header,
        7,
        1_767_225_600_000,
        Protection::Mac,
        false,
        [1, 2, 3, 4],
    );
    wire::set_tag(header, &[0xa5; wire::TAG_LEN]);
    vec![
        named(
            "chat-message",
            calls(
                1,
                "dhost:chat/chat#message",
                &[vec![text("ann"), text("hello everyone")]],
            ),
        ),
        named(
            "set-value-run",
            calls(
                10,
                "dhost:stress/sink#set-value",
                &(0..8)
                    .map(|v| vec![Value::Integer(v.into())])
                    .collect::<Vec<_>>(),
            ),
        ),
        named(
            "announce",
            control(&[encode_frame(&|out| wire::encode_announce(&announce, out))]),
        ),
        // The longest lists an announcement may carry (a list one longer is refused).
        named(
            "announce-full",
            control(&[encode_frame(&|out| {
                let full = Announce {
                    presence: Presence {
                        functions: (0..wire::MAX_FUNCTIONS_ANNOUNCED)
                            .map(|f| format!("x:y/z#f{f}"))
                            .collect(),
                        links: (0..wire::MAX_LINKS_ANNOUNCED as u64)
                            .map(|n| (format!("peer{n}"), n))
                            .collect(),
                        ..announce.presence.clone()
                    },
                    ..announce.clone()
                };
                wire::encode_announce(&full, out)
            })]),
        ),
        named(
            "query-goodbye",
            control(&[
                encode_frame(&|out| wire::encode_query(out)),
                encode_frame(&|out| wire::encode_goodbye(out)),
            ]),
        ),
        named(
            "status",
            control(&[encode_frame(&|out| wire::encode_status(&status, out))]),
        ),
        named("sealed", sealed),
    ]
}

/// Frames as the TCP port's codec writes them, one after the other.
fn framed(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut codec = dhost::rpc::handshake::codec();
    let mut out = BytesMut::new();
    for frame in frames {
        codec
            .encode(Bytes::copy_from_slice(frame), &mut out)
            .expect("a frame fits");
    }
    out.to_vec()
}

/// A publisher's offer, chunk and finish, then a peer's fetch, listing and WIT request.
fn module_transfer() -> Vec<Vec<u8>> {
    let module = b"\0asm\x0d\0\x01\0".to_vec();
    let publication = Publication {
        name: "kv".to_string(),
        digest: Some(Digest::of(&module)),
        size: module.len() as u64,
        published_at: 1_700_000_000_000,
        publisher: "ann".to_string(),
    };
    let digest = Digest::of(&module);
    [
        ModuleRequest::Offer(publication.clone()),
        ModuleRequest::Chunk {
            digest,
            offset: 0,
            data: module,
        },
        ModuleRequest::Finish(digest),
        ModuleRequest::Fetch {
            digest,
            offset: 0,
            max: 1 << 18,
        },
        ModuleRequest::List,
        ModuleRequest::Wit("kv".to_string()),
        ModuleRequest::Unpublish(Publication {
            digest: None,
            size: 0,
            ..publication
        }),
    ]
    .into_iter()
    .enumerate()
    .map(|(id, request)| {
        let function = request.function();
        frame::encode_request(id as u64, &function, &request.into_args(), true)
    })
    .collect()
}

fn tcp_frame() -> Vec<Seed> {
    let nested = Value::Map(vec![
        (
            text("list"),
            Value::Array(vec![Value::Float(1.5), Value::Null, Value::Bool(true)]),
        ),
        (text("bytes"), Value::Bytes(vec![0, 1, 2])),
        (
            text("tagged"),
            Value::Tag(1, Box::new(Value::Integer(0.into()))),
        ),
        (text("negative"), Value::Integer((-5).into())),
    ]);
    vec![
        named(
            "hello-chat-message",
            framed(&[
                frame::encode_hello(7, Some("node-a")),
                frame::encode_request(
                    1,
                    "dhost:chat/chat#message",
                    &[text("ann"), text("hi")],
                    false,
                ),
            ]),
        ),
        named(
            "kv-get",
            framed(&[
                frame::encode_hello(8, None),
                frame::encode_request(2, "dhost:kv/store#get", &[text("k")], true),
            ]),
        ),
        named("module-transfer", framed(&module_transfer())),
        named(
            "mailbox-write-read",
            framed(&[
                frame::encode_request(
                    3,
                    WRITE_FUNCTION,
                    &[Value::Integer(1.into()), Value::Bytes(b"hello".to_vec())],
                    true,
                ),
                frame::encode_request(4, READ_FUNCTION, &[Value::Integer(1.into())], true),
            ]),
        ),
        named(
            "replies",
            framed(&[
                frame::encode_reply(2, &Ok(text("v"))),
                frame::encode_reply(
                    3,
                    &Err(CallFailure::new(FailureKind::Timeout, "no reply in 5s")),
                ),
                frame::encode_reply(4, &Ok(Value::Null)),
            ]),
        ),
        named(
            "handshake",
            framed(&[
                Handshake::Challenge {
                    key: [1, 2, 3, 4],
                    nonce: [5; 32],
                    encrypt: true,
                }
                .encode(),
                Handshake::Answer {
                    nonce: [6; 32],
                    encrypt: true,
                    proof: [7; 32],
                }
                .encode(),
                Handshake::Proof([8; 32]).encode(),
                Handshake::Refusal("it uses key 01020304, which this node does not hold".into())
                    .encode(),
            ]),
        ),
        named(
            "nested-arguments",
            framed(&[frame::encode_request(
                5,
                "dhost:fuzz/types#nested",
                &[nested],
                true,
            )]),
        ),
    ]
}

fn mailbox_text() -> Vec<Seed> {
    vec![
        named("telnet", "w 1\r\nhello\r\nr 1\r\nq\r\n"),
        named("script", "w 3\nhello"),
        named("binary", "w 0 5\na\nb\r\x00r 0\n"),
        named("read", "r 2\n"),
        named(
            "mistakes",
            "r 9\nx\nw 0 5000\nw 99999999999999999999 4\nabcdw x\nignored\nr 0\n",
        ),
    ]
}

/// A value of type `ty` (none for a resource, a future, a stream).
fn sample(ty: &Type) -> Option<Val> {
    let boxed = |ty: Option<Type>| -> Option<Option<Box<Val>>> {
        match ty {
            Some(ty) => Some(Some(Box::new(sample(&ty)?))),
            None => Some(None),
        }
    };
    Some(match ty {
        Type::Bool => Val::Bool(true),
        Type::S8 => Val::S8(-8),
        Type::U8 => Val::U8(8),
        Type::S16 => Val::S16(-16),
        Type::U16 => Val::U16(16),
        Type::S32 => Val::S32(-32),
        Type::U32 => Val::U32(32),
        Type::S64 => Val::S64(-64),
        Type::U64 => Val::U64(64),
        Type::Float32 => Val::Float32(1.5),
        Type::Float64 => Val::Float64(-2.25),
        Type::Char => Val::Char('é'),
        Type::String => Val::String("héllo".to_string()),
        Type::List(list) => Val::List(vec![sample(&list.ty())?, sample(&list.ty())?]),
        Type::FixedLengthList(list) => Val::FixedLengthList(
            (0..list.len())
                .map(|_| sample(&list.ty()))
                .collect::<Option<_>>()?,
        ),
        Type::Record(record) => Val::Record(
            record
                .fields()
                .map(|f| Some((f.name.to_string(), sample(&f.ty)?)))
                .collect::<Option<_>>()?,
        ),
        Type::Tuple(tuple) => Val::Tuple(tuple.types().map(|t| sample(&t)).collect::<Option<_>>()?),
        Type::Variant(variant) => {
            let case = variant.cases().last()?;
            Val::Variant(case.name.to_string(), boxed(case.ty)?)
        }
        Type::Enum(names) => Val::Enum(names.names().last()?.to_string()),
        Type::Option(option) => Val::Option(Some(Box::new(sample(&option.ty())?))),
        Type::Result(result) => Val::Result(Ok(boxed(result.ok())?)),
        Type::Flags(flags) => Val::Flags(flags.names().take(2).map(str::to_string).collect()),
        Type::Map(map) => Val::Map(vec![(sample(&map.key())?, sample(&map.value())?)]),
        Type::Own(_) | Type::Borrow(_) | Type::Future(_) | Type::Stream(_) | Type::ErrorContext => {
            return None;
        }
    })
}

fn cbor_to_wit() -> Vec<Seed> {
    let mut seeds = Vec::new();
    for (n, case) in cases().iter().enumerate() {
        let cbor = match &case.decode {
            Decode::Args(params) => {
                let Some(vals) = params
                    .iter()
                    .map(|(_, ty)| sample(ty))
                    .collect::<Option<Vec<_>>>()
                else {
                    continue;
                };
                let mut out = Vec::new();
                value::encode_args(&vals, &mut out).expect("a sample can be sent");
                out
            }
            // (A parameter's type alone is reached from its function's seed.)
            Decode::One(_) if !case.what.ends_with(" -> result") => continue,
            Decode::One(ty) => {
                let Some(val) = sample(ty) else { continue };
                encoded(&value::to_cbor(&val).expect("a sample can be sent"))
            }
        };
        let name: String = case
            .what
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let mut input = vec![u8::try_from(n).expect("at most 256 cases")];
        input.extend(cbor);
        seeds.push((format!("{n:03}-{name}"), input));
    }
    seeds
}

fn jail_policy() -> Vec<Seed> {
    let doc = include_str!("../../docs/jail.md");
    let example = doc
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/jail.md has a TOML example");
    vec![
        named("docs-jail-md", example),
        named("empty", ""),
        named(
            "default-only",
            "[default]\nmax-time = \"off\"\nname-lookup = true\nmax-memory = \"1GiB\"\n",
        ),
        named(
            "serve-from",
            "[guest.kv]\nserve = [\"dhost:kv/store#get from node-a node-b\", \"dhost:kv/store#put\"]\n\
             send = []\nnetwork = [\"*:443\", \"10.0.0.0/8:8000-8099\"]\ncall-timeout = \"250ms\"\n",
        ),
    ]
}

/// The frames a sealed datagram may carry: none, a query, and a call.
fn sealing() -> Vec<Seed> {
    let mut query = Vec::new();
    dhost::wire::encode_query(&mut query);
    let mut call = Vec::new();
    dhost::wire::encode_call(
        1,
        "dhost:chat/chat#message",
        &["ann".into(), "hello".into()],
        &mut call,
    );
    vec![
        named("empty", Vec::new()),
        named("query", query),
        named("call", call),
    ]
}

/// Components of the shapes published modules took in attacks (many memories, a start
/// function that loops, too many instances), one that serves a function, and one that
/// imports what no node provides.
fn module_loading() -> Vec<Seed> {
    let memories = |instances: usize, pages: u32| {
        let module = format!(
            "(core module $m (memory {pages}) (func $touch (i32.store (i32.const 0) \
             (i32.const 1))) (start $touch))"
        );
        let instances = "(core instance (instantiate $m))\n".repeat(instances);
        format!("(component {module}\n{instances})")
    };
    [
        ("empty", "(component)".to_string()),
        ("many-memories", memories(8, 64)),
        (
            "too-many-instances",
            "(component (core module $m) ".to_string()
                + &"(core instance (instantiate $m)) ".repeat(40)
                + ")",
        ),
        (
            "loops-in-start",
            "(component (core module $m (func $spin (loop $l (br $l))) (start $spin)) \
             (core instance (instantiate $m)))"
                .to_string(),
        ),
        (
            "serves",
            r#"(component
                 (core module $m (func (export "f")))
                 (core instance $i (instantiate $m))
                 (func $f (canon lift (core func $i "f")))
                 (instance $iface (export "f" (func $f)))
                 (export "dhost:fuzz/app" (instance $iface)))"#
                .to_string(),
        ),
        (
            "imports",
            r#"(component (import "dstc:node/teleport" (instance (export "go" (func)))))"#
                .to_string(),
        ),
    ]
    .into_iter()
    .map(|(name, text)| named(name, wat::parse_str(&text).expect("a seed's WAT")))
    .collect()
}
