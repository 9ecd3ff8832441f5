//! The wire format's unit tests: round trips, and hostile bytes refused with the reason.

use super::frame::BREAK;
use super::*;
use crate::frame_kind::{POSITION as KIND_POSITION, STATUS as KIND_STATUS};

fn call(seq: u64, function: &str, args: Vec<Value>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_call(seq, function, &args, &mut out);
    out
}

fn datagram(sender: u64, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_header(sender, Some(1), &mut out);
    for f in frames {
        out.extend_from_slice(f);
    }
    out
}

fn raw(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_item(value, &mut out);
    out
}

#[test]
fn round_trip() {
    let args = vec![
        Value::Text("ann".into()),
        Value::Text("x".repeat(10_000)),
        Value::Bytes(vec![0, 1, 2]),
    ];
    let bytes = datagram(
        42,
        &[
            call(7, "dhost:chat/chat#message", args.clone()),
            call(8, "a:b/c#d", vec![]),
        ],
    );
    let d = decode_datagram(&bytes).unwrap();
    assert_eq!(
        d.header,
        Header {
            version: VERSION,
            sender: 42,
            seq: Some(1),
            packet: 0,
            sent_at: 0,
            auth: Auth {
                protection: Protection::None,
                unicast: false,
                key: [0; 4],
                tag: [0; TAG_LEN]
            },
            len: MAX_HEADER,
        }
    );
    assert_eq!(
        d.frames,
        vec![
            Frame::Call(CallRun::single(7, "dhost:chat/chat#message", &args)),
            Frame::Call(CallRun::single(8, "a:b/c#d", &[])),
        ]
    );
}

fn args(values: &[Value]) -> Vec<u8> {
    raw(&Value::Array(values.to_vec()))
}

#[test]
fn consecutive_calls_to_one_function_travel_as_one_run() {
    let mut batcher = Batcher::new(1, MAX_DATAGRAM, false);
    for v in 0..1000u64 {
        batcher
            .push_call(v + 10, "a:b/c#set", &args(&[v.into()]))
            .unwrap();
    }
    batcher.push_call(2000, "a:b/c#set", &args(&[])).unwrap(); // a gap: a new run
    batcher.push_call(2001, "a:b/c#other", &args(&[])).unwrap();
    let mut f = Vec::new();
    encode_query(&mut f);
    batcher.push(&f).unwrap();
    batcher.push_call(2003, "a:b/c#other", &args(&[])).unwrap();
    let datagrams = batcher.take();
    assert_eq!(datagrams.len(), 1);
    // 1000 calls of a small argument cost little more than their arguments.
    assert!(
        datagrams[0].len() < 1000 * 4 + 200,
        "{}",
        datagrams[0].len()
    );
    let frames = decode_datagram(&datagrams[0]).unwrap().frames;
    let Frame::Call(run) = &frames[0] else {
        panic!("{frames:?}")
    };
    assert_eq!(
        (run.first, run.count(), run.function.as_str()),
        (10, 1000, "a:b/c#set")
    );
    let decoded: Vec<Value> = run
        .arguments()
        .map(|a| ciborium::de::from_reader(a).unwrap())
        .collect();
    let expected: Vec<Value> = (0..1000u64).map(|v| Value::Array(vec![v.into()])).collect();
    assert_eq!(decoded, expected);
    let seqs: Vec<(u64, usize)> = frames
        .iter()
        .map(|f| match f {
            Frame::Call(c) => (c.first, c.count()),
            _ => (0, 0),
        })
        .collect();
    assert_eq!(seqs, [(10, 1000), (2000, 1), (2001, 1), (0, 0), (2003, 1)]);
}

#[test]
fn the_functions_of_a_datagram_are_read_without_its_arguments() {
    let mut batcher = Batcher::new(1, MAX_DATAGRAM, false);
    for (n, function) in ["a:b/c#set", "a:b/c#set", "message", "a:b/c#set"]
        .iter()
        .enumerate()
    {
        let nested = Value::Array(vec![Value::Map(vec![(1.into(), "x".into())])]);
        batcher
            .push_call(n as u64 + 1, function, &args(&[nested, (n as u64).into()]))
            .unwrap();
    }
    let mut f = Vec::new();
    encode_query(&mut f);
    batcher.push(&f).unwrap();
    let datagram = &batcher.take()[0];
    let header = read_header(&mut &datagram[..]).unwrap();
    let frames = &datagram[header.len..];
    let all = call_functions(frames).unwrap();
    assert_eq!(all, ["a:b/c#set", "message", "a:b/c#set"]);
    assert_eq!(call_functions(&[]).unwrap(), Vec::<&str>::new());
    // Cut anywhere: refused, or (cut between frames) the functions of the frames before.
    for cut in 1..frames.len() {
        if let Ok(some) = call_functions(&frames[..cut]) {
            assert!(all.starts_with(&some), "cut at {cut}: {some:?}");
        }
    }
    assert!(
        call_functions(&frames[..5]).is_err(),
        "inside the first frame"
    );
    assert!(call_functions(&[0x01]).is_err(), "not an array");
}

#[test]
fn pushing_calls_together_packs_as_pushing_them_one_by_one() {
    let calls: Vec<Vec<u8>> = (0..5000u64).map(|v| args(&[v.into()])).collect();
    let mut one_by_one = Batcher::new(1, 4000, true);
    let mut together = Batcher::new(1, 4000, true);
    one_by_one.push_call(1, "a:b/c#set", &calls[0]).unwrap();
    together.push_call(1, "a:b/c#set", &calls[0]).unwrap();
    for (seq, a) in (2..).zip(&calls[1..]) {
        one_by_one.push_call(seq, "a:b/c#set", a).unwrap();
    }
    together.push_calls(2, "a:b/c#set", calls[1..].iter().map(Vec::as_slice), |e| {
        panic!("{e}")
    });
    let big = vec![0x80; 5000];
    let mut refused = 0;
    together.push_calls(5001, "a:b/c#set", [&big[..], &calls[0]], |_| refused += 1);
    one_by_one.push_call(5002, "a:b/c#set", &calls[0]).unwrap();
    assert_eq!(refused, 1);
    assert_eq!(together.take(), one_by_one.take());
}

#[test]
fn a_run_is_cut_where_the_datagram_is_full() {
    let mut batcher = Batcher::new(1, 300, false);
    for v in 0..200u64 {
        batcher
            .push_call(v, "a:b/c#set", &args(&[v.into()]))
            .unwrap();
    }
    let mut next = 0;
    for d in batcher.take() {
        assert!(d.len() <= 300);
        for frame in decode_datagram(&d).unwrap().frames {
            let Frame::Call(run) = frame else { panic!() };
            assert_eq!(run.first, next);
            next += run.count() as u64;
        }
    }
    assert_eq!(next, 200);
}

#[test]
fn definite_and_indefinite_call_frames_decode_alike() {
    let definite = raw(&Value::Array(vec![
        0.into(),
        5.into(),
        "a:b/c#d".into(),
        Value::Array(vec![1.into()]),
        Value::Array(vec![2.into()]),
    ]));
    let mut indefinite = Vec::new();
    encode_call(5, "a:b/c#d", &[1.into()], &mut indefinite);
    indefinite.pop();
    indefinite.extend(args(&[2.into()]));
    indefinite.push(BREAK);
    let a = decode_datagram(&datagram(1, &[definite])).unwrap();
    let b = decode_datagram(&datagram(1, &[indefinite])).unwrap();
    assert_eq!(a, b);
    let Frame::Call(run) = &a.frames[0] else {
        panic!()
    };
    assert_eq!(run.count(), 2);
}

#[test]
fn header_only_is_an_empty_datagram() {
    let d = decode_datagram(&datagram(1, &[])).unwrap();
    assert!(d.frames.is_empty());
}

#[test]
fn empty_and_garbage_are_rejected() {
    assert_eq!(
        decode_datagram(&[]),
        Err(WireError::Malformed("truncated".into()))
    );
    assert!(matches!(
        decode_datagram(&[0xff, 0xff, 0xff]),
        Err(WireError::Malformed(_))
    ));
    assert_eq!(decode_datagram(b"hello world"), Err(WireError::NoMagic));
}

#[test]
fn every_truncation_is_rejected() {
    let header_len = datagram(9, &[]).len();
    let bytes = datagram(9, &[call(1, "a:b/c#d", vec![Value::Text("hi".into())])]);
    // A header alone is a valid (empty) datagram; every other prefix is cut mid-item.
    for len in (0..bytes.len()).filter(|&len| len != header_len) {
        assert!(
            decode_datagram(&bytes[..len]).is_err(),
            "prefix {len} accepted"
        );
    }
}

#[test]
fn wrong_version_is_rejected() {
    let header = Value::Tag(
        MAGIC_TAG,
        Box::new(Value::Array(vec![2.into(), 1.into(), Value::Null])),
    );
    assert_eq!(decode_datagram(&raw(&header)), Err(WireError::Version(2)));
}

#[test]
fn bad_headers_are_rejected() {
    for inner in [
        Value::Text("x".into()),
        Value::Array(vec![]),
        Value::Array(vec![VERSION.into()]),
        Value::Array(vec![VERSION.into(), (-1).into()]),
        Value::Array(vec![VERSION.into(), 5.into()]),
        Value::Array(vec![VERSION.into(), 5.into(), 0.into()]),
        Value::Array(vec![VERSION.into(), 5.into(), (1u64 << 63).into()]),
        Value::Array(vec![VERSION.into(), 5.into(), "x".into()]),
        Value::Array(vec![VERSION.into(), 5.into(), 1.into(), 3.into()]),
        header_fields(5, 1.into(), Value::Bytes(vec![0; 20])),
        header_fields(5, 1.into(), Value::Bytes(vec![3; 21])),
        header_fields(5, 1.into(), Value::Null),
        Value::Array(vec![
            VERSION.into(),
            5.into(),
            1.into(),
            1.into(),
            1.into(),
            Value::Bytes(vec![0; 21]),
            "a field too many".into(),
        ]),
    ] {
        let bytes = raw(&Value::Tag(MAGIC_TAG, Box::new(inner.clone())));
        assert!(
            matches!(decode_datagram(&bytes), Err(WireError::Shape { .. })),
            "{inner:?}"
        );
    }
}

#[test]
fn bad_frames_are_rejected() {
    for frame in [
        Value::Null,
        Value::Array(vec![]),
        Value::Array(vec![0.into()]),
        Value::Array(vec![0.into(), 1.into()]),
        Value::Array(vec![0.into(), 1.into(), "f".into()]),
        Value::Array(vec![0.into(), 1.into(), 5.into(), Value::Array(vec![])]),
        Value::Array(vec![0.into(), 1.into(), "f".into(), "not args".into()]),
        Value::Array(vec![
            0.into(),
            u64::MAX.into(),
            "f".into(),
            Value::Array(vec![]),
        ]),
        Value::Array(vec![
            0.into(),
            1.into(),
            "f".into(),
            Value::Array(vec![]),
            1.into(),
        ]),
    ] {
        let bytes = datagram(1, &[raw(&frame)]);
        assert!(
            matches!(decode_datagram(&bytes), Err(WireError::Shape { .. })),
            "{frame:?}"
        );
    }
}

#[test]
fn membership_frames_round_trip() {
    let mut frames = Vec::new();
    let functions = vec!["a:b/c#d".to_string(), "a:b/c#e".to_string()];
    let announce = Announce {
        presence: Presence {
            name: "node-a".into(),
            uptime_ms: 1500,
            functions,
            tcp: Some("127.0.0.1:4100".parse().unwrap()),
            links: vec![("node-b".into(), 2)],
        },
        streams: vec![StreamCounts {
            peer: "node-c".into(),
            received: 10,
            repaired: 2,
            lost: 1,
        }],
        refused: vec![RefusedCounts {
            source: "10.0.0.9:4001".into(),
            unauthenticated: 7,
            replayed: 3,
        }],
        modules: vec![crate::modules::Publication {
            name: "kv".into(),
            digest: Some(crate::modules::Digest([5; 32])),
            size: 1234,
            published_at: 1_700_000_000_000,
            publisher: "ann".into(),
        }],
    };
    let mut f = Vec::new();
    encode_announce(&announce, &mut f);
    frames.push(f);
    let mut f = Vec::new();
    encode_query(&mut f);
    frames.push(f);
    let mut f = Vec::new();
    encode_goodbye(&mut f);
    frames.push(f);
    let d = decode_datagram(&datagram(8, &frames)).unwrap();
    assert_eq!(
        d.frames,
        vec![Frame::Announce(announce), Frame::Query, Frame::Goodbye,]
    );
}

#[test]
fn bad_announcements_are_rejected() {
    for fields in [
        vec![1.into()],
        vec![1.into(), "".into(), 0.into(), Value::Array(vec![])],
        vec![
            1.into(),
            "x".repeat(300).into(),
            0.into(),
            Value::Array(vec![]),
        ],
        vec![1.into(), "a\nb".into(), 0.into(), Value::Array(vec![])],
        vec![1.into(), "a".into(), Value::Null, Value::Array(vec![])],
        vec![1.into(), "a".into(), 0.into(), Value::Array(vec![5.into()])],
        vec![
            1.into(),
            "a".into(),
            0.into(),
            Value::Array(vec![]),
            "not an address".into(),
        ],
        vec![
            1.into(),
            "a".into(),
            0.into(),
            Value::Array(vec![]),
            Value::Null,
            Value::Array(vec![Value::Array(vec!["b".into()])]),
        ],
        vec![
            1.into(),
            "a".into(),
            0.into(),
            Value::Array(vec![]),
            Value::Null,
            Value::Array(vec![]),
            Value::Array(vec![Value::Array(vec!["b".into(), 1.into(), 2.into()])]),
        ],
    ] {
        let bytes = datagram(1, &[raw(&Value::Array(fields.clone()))]);
        assert!(
            matches!(
                decode_datagram(&bytes),
                Err(WireError::Shape {
                    what: "announce",
                    ..
                })
            ),
            "{fields:?}"
        );
    }
}

#[test]
fn announcements_are_bounded_in_every_list() {
    let ids = |n: usize, id: &dyn Fn(usize) -> String| {
        Value::Array((0..n).map(|i| Value::Text(id(i))).collect())
    };
    let announce = |functions: Value, links: Value| {
        let fields = vec![
            1.into(),
            "a".into(),
            0.into(),
            functions,
            Value::Null,
            links,
        ];
        decode_datagram(&datagram(1, &[raw(&Value::Array(fields))]))
    };
    let none = Value::Array(vec![]);
    let link = |i: usize| Value::Array(vec![format!("p{i}").into(), 1.into()]);
    // At the caps: read.
    let most = ids(MAX_FUNCTIONS_ANNOUNCED, &|i| format!("x:y/z#f{i}"));
    let links = Value::Array((0..MAX_LINKS_ANNOUNCED).map(link).collect());
    assert!(announce(most, links).is_ok());
    // Past them, or a function id that cannot be one: refused whole, saying why.
    for (functions, links, why) in [
        (
            ids(MAX_FUNCTIONS_ANNOUNCED + 1, &|i| format!("f{i}")),
            none.clone(),
            "it lists 1025 functions, more than 1024",
        ),
        (
            ids(1, &|_| String::new()),
            none.clone(),
            "a function id is empty",
        ),
        (
            ids(1, &|_| "a\u{1b}[2J".into()),
            none.clone(),
            "not printable",
        ),
        (
            ids(1, &|_| "f".repeat(MAX_FUNCTION_ID + 1)),
            none.clone(),
            "too long",
        ),
        (
            none.clone(),
            Value::Array((0..=MAX_LINKS_ANNOUNCED).map(link).collect()),
            "the links are not an array of at most 64",
        ),
    ] {
        let err = announce(functions, links).unwrap_err().to_string();
        assert!(err.contains(why), "{why}: {err}");
    }
    // A frame of more items than any a node sends is refused before it is decoded.
    let bloat = ids(MAX_CONTROL_ITEMS, &|_| String::new());
    let err = announce(bloat, none).unwrap_err().to_string();
    assert!(
        err.contains("more items than a node reads in one frame"),
        "{err}"
    );
}

#[test]
fn unknown_kinds_are_skipped_not_rejected() {
    let frame = Value::Array(vec![9.into(), 3.into(), "future".into()]);
    let d = decode_datagram(&datagram(1, &[raw(&frame)])).unwrap();
    assert_eq!(d.frames, vec![Frame::Unknown { kind: 9 }]);
}

#[test]
fn deep_nesting_is_rejected_without_overflowing_the_stack() {
    let mut bytes = datagram(1, &[]);
    bytes.extend(std::iter::repeat_n(0x81, 100_000)); // [[[[...
    bytes.push(0x00);
    assert!(matches!(
        decode_datagram(&bytes),
        Err(WireError::Malformed(_))
    ));
}

#[test]
fn huge_declared_lengths_are_rejected() {
    let mut bytes = datagram(1, &[]);
    // An array claiming 2^63 items, then nothing.
    bytes.extend([0x9b, 0x80, 0, 0, 0, 0, 0, 0, 0]);
    assert!(decode_datagram(&bytes).is_err());
    let mut bytes = datagram(1, &[]);
    // A text string claiming 4 GiB.
    bytes.extend([0x7a, 0xff, 0xff, 0xff, 0xff, b'a']);
    assert!(decode_datagram(&bytes).is_err());
}

#[test]
fn mutated_datagrams_never_panic() {
    let valid = datagram(
        3,
        &[
            call(
                1,
                "dhost:chat/chat#message",
                vec![Value::Text("ann".into()), Value::Text("hi".into())],
            ),
            call(
                2,
                "a:b/c#d",
                vec![Value::Array(vec![Value::Map(vec![(
                    Value::Null,
                    Value::Bytes(vec![1]),
                )])])],
            ),
        ],
    );
    // And a datagram of runs, as a node's batcher packs them.
    let mut batcher = Batcher::new(3, MAX_DATAGRAM, false);
    for v in 0..50u64 {
        let f = if v % 20 < 15 {
            "a:b/c#set"
        } else {
            "a:b/c#other"
        };
        batcher
            .push_call(v, f, &args(&[v.into(), "x".into()]))
            .unwrap();
    }
    let runs = batcher.take().remove(0);
    // A small xorshift generator: the same mutations every run.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..100_000 {
        let mut bytes = if i % 2 == 0 {
            valid.clone()
        } else {
            runs.clone()
        };
        for _ in 0..(next() % 4 + 1) {
            let at = (next() as usize) % bytes.len();
            match next() % 4 {
                0 => bytes[at] ^= 1 << (next() % 8),
                1 => bytes[at] = next() as u8,
                2 => bytes.truncate(at.max(1)),
                _ => bytes.insert(at, next() as u8),
            }
        }
        let _ = decode_datagram(&bytes);
    }
    for _ in 0..20_000 {
        let len = (next() % 64) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = decode_datagram(&bytes);
    }
}

#[test]
fn batcher_packs_in_order_and_splits_at_the_limit() {
    let mut batcher = Batcher::new(5, 200, false);
    assert!(batcher.is_empty());
    let frames: Vec<Vec<u8>> = (0..20)
        .map(|i| call(i, "a:b/c#d", vec![Value::Text("x".repeat(20))]))
        .collect();
    for f in &frames {
        batcher.push(f).unwrap();
    }
    let datagrams = batcher.take();
    assert!(datagrams.len() > 1);
    assert!(batcher.is_empty());
    let mut seqs = Vec::new();
    for d in &datagrams {
        assert!(d.len() <= 200);
        let decoded = decode_datagram(d).unwrap();
        assert_eq!(decoded.header.sender, 5);
        seqs.extend(decoded.frames.iter().map(|f| match f {
            Frame::Call(c) => c.first,
            other => panic!("{other:?}"),
        }));
    }
    assert_eq!(seqs, (0..20).collect::<Vec<_>>());
}

#[test]
fn batcher_refuses_a_frame_larger_than_a_datagram() {
    let mut batcher = Batcher::new(5, 100, false);
    let big = call(1, "a:b/c#d", vec![Value::Text("x".repeat(100))]);
    assert!(matches!(
        batcher.push(&big),
        Err(WireError::TooLarge { max: 100, .. })
    ));
    assert!(batcher.is_empty());
}

#[test]
fn a_sequenced_datagram_is_numbered_as_it_leaves() {
    let mut batcher = Batcher::new(0xabcd, MAX_DATAGRAM, true);
    batcher.push_call(1, "a:b/c#d", &args(&[5.into()])).unwrap();
    let mut datagram = batcher.take().remove(0);
    // Not numbered yet: no receiver takes it.
    assert!(matches!(
        decode_datagram(&datagram),
        Err(WireError::Shape { what: "header", .. })
    ));
    stamp(&mut datagram, NUMBERS_BELOW - 1);
    let header = decode_datagram(&datagram).unwrap().header;
    assert_eq!(
        (header.sender, header.seq),
        (0xabcd, Some(NUMBERS_BELOW - 1))
    );
    stamp(&mut datagram, 7);
    assert_eq!(decode_datagram(&datagram).unwrap().header.seq, Some(7));
    let mut control = Vec::new();
    encode_header(3, None, &mut control);
    assert_eq!(decode_datagram(&control).unwrap().header.seq, None);
}

#[test]
fn headers_of_other_shapes_decode_alike() {
    // Minimal integers, a mode with the unicast bit, a key id and a tag.
    let mut auth = vec![0x81, 1, 2, 3, 4];
    auth.extend(10..10 + TAG_LEN as u8);
    let d = decode_datagram(&raw(&header_fields(5, 9.into(), Value::Bytes(auth)))).unwrap();
    let mut tag = [0; TAG_LEN];
    tag.iter_mut().zip(10..).for_each(|(t, n)| *t = n);
    assert_eq!(
        d.header,
        Header {
            version: VERSION,
            sender: 5,
            seq: Some(9),
            packet: 3,
            sent_at: 4,
            auth: Auth {
                protection: Protection::Mac,
                unicast: true,
                key: [1, 2, 3, 4],
                tag
            },
            len: 3 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 21,
        }
    );
    // An indefinite-length header is refused: the tag must end the header.
    let mut indefinite = raw(&header_fields(5, Value::Null, Value::Bytes(vec![0; 21])));
    indefinite[3] = 0x9f;
    indefinite.push(0xff);
    assert!(decode_datagram(&indefinite).is_err());
}

/// A header's item with sender `sender`, `seq`, packet 3, sent at 4, and `auth`.
fn header_fields(sender: u64, seq: Value, auth: Value) -> Value {
    Value::Tag(
        MAGIC_TAG,
        Box::new(Value::Array(vec![
            VERSION.into(),
            sender.into(),
            seq,
            3.into(),
            4.into(),
            auth,
        ])),
    )
}

#[test]
fn sealing_fills_in_the_header_where_it_is_read() {
    let mut datagram = Vec::new();
    encode_header(0x1234, Some(77), &mut datagram);
    let len = own_header_len(&datagram);
    assert_eq!(len, datagram.len());
    assert_eq!(own_sender(&datagram), 0x1234);
    seal_header(
        &mut datagram,
        99,
        1_700_000_000_000,
        Protection::Encrypted,
        true,
        [9, 8, 7, 6],
    );
    set_tag(&mut datagram, &[5; TAG_LEN]);
    let header = decode_datagram(&datagram).unwrap().header;
    assert_eq!((header.packet, header.sent_at), (99, 1_700_000_000_000));
    assert_eq!(header.auth.protection, Protection::Encrypted);
    assert!(header.auth.unicast);
    assert_eq!(
        (header.auth.key, header.auth.tag),
        ([9, 8, 7, 6], [5; TAG_LEN])
    );
    let mut control = Vec::new();
    encode_header(1, None, &mut control);
    assert_eq!(own_header_len(&control), control.len());
    seal_header(&mut control, 1, 2, Protection::Mac, false, [1; 4]);
    let header = decode_datagram(&control).unwrap().header;
    assert_eq!(
        (header.seq, header.packet, header.len),
        (None, 1, control.len())
    );
}

#[test]
fn stream_frames_round_trip() {
    let position = Position {
        next: 10,
        oldest: 4,
    };
    let status = Status {
        stream: 77,
        delivered: 3,
        window: 1 << 20,
        missing: vec![(3, 3), (5, 9)],
    };
    let mut frames = vec![Vec::new(), Vec::new()];
    encode_position(position, &mut frames[0]);
    encode_status(&status, &mut frames[1]);
    let d = decode_datagram(&datagram(8, &frames)).unwrap();
    assert_eq!(
        d.frames,
        vec![Frame::Position(position), Frame::Status(status)]
    );
}

#[test]
fn impossible_positions_and_statuses_are_rejected() {
    let too_many: Vec<Value> = (0..=MAX_MISSING_RANGES as u64)
        .map(|i| Value::Array(vec![(10 + 2 * i).into(), (10 + 2 * i).into()]))
        .collect();
    for frame in [
        vec![KIND_POSITION.into(), 3.into(), 4.into()],
        vec![KIND_POSITION.into(), 0.into(), 0.into()],
        vec![KIND_POSITION.into(), u64::MAX.into(), 1.into()],
        vec![KIND_POSITION.into(), 3.into()],
        vec![KIND_STATUS.into(), 1.into(), 2.into()],
        vec![
            KIND_STATUS.into(),
            1.into(),
            5.into(),
            0.into(),
            Value::Array(too_many),
        ],
        vec![
            KIND_STATUS.into(),
            1.into(),
            5.into(),
            0.into(),
            Value::Array(vec![Value::Array(vec![4.into(), 6.into()])]),
        ],
        vec![
            KIND_STATUS.into(),
            1.into(),
            5.into(),
            0.into(),
            Value::Array(vec![Value::Array(vec![8.into(), 6.into()])]),
        ],
        vec![KIND_STATUS.into(), 1.into(), (-5).into(), 0.into()],
    ] {
        let bytes = datagram(1, &[raw(&Value::Array(frame.clone()))]);
        assert!(
            matches!(decode_datagram(&bytes), Err(WireError::Shape { .. })),
            "{frame:?}"
        );
    }
}
