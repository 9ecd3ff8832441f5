//! The body of the `tcp_frame` fuzz target, shared with `tests/fuzz_corpora.rs`: the bytes
//! a binary connection to a node's TCP port sends after its magic, as hostile input,
//! through the port's framing (`dhost::rpc::handshake::codec()`: a 4-byte length, as the
//! node's `FramedRead` runs it) and the frame decoders (`dhost::rpc::frame::decode`, and
//! `Handshake::decode` of a keyed connection's handshake); each frame that decodes is
//! encoded again and must decode to the same; mailbox requests are served
//! (`dhost::mailbox::functions::serve_call`), as the port serves them beside the event loop, and
//! module requests parsed (`dhost::modules::protocol::ModuleRequest::parse`). The
//! same bytes on a keyed connection (`auth::connection::FrameCodec` with a frame key,
//! tagged or encrypted) must be refused, and the frames, sealed by a holder of the key,
//! must come through whole.

use bytes::{Bytes, BytesMut};
use ciborium::Value;
use dhost::auth::connection::{FrameCodec, Transcript};
use dhost::auth::key::GroupKey;
use dhost::mailbox::{self, MailboxConfig, Mailboxes};
use dhost::modules::protocol::{ModuleRequest, is_module_function};
use dhost::rpc::frame::{self, Handshake, MAX_FRAME, PortFrame};
use dhost::rpc::handshake::codec;
use tokio_util::codec::{Decoder as _, Encoder as _};

/// Runs one input; panics if the codec or a decoder panics or disagrees with the encoders.
pub(crate) fn run(data: &[u8]) {
    let mut codec = codec();
    let mut buffer = BytesMut::from(data);
    let mut frames = Vec::new();
    // As FramedRead does: decode while frames come, then once more at the end of the
    // connection (an error if a frame is cut short).
    let ended = loop {
        match codec.decode(&mut buffer) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => break codec.decode_eof(&mut buffer),
            Err(e) => break Err(e),
        }
    };
    if let Ok(Some(frame)) = ended {
        frames.push(frame);
    }
    for bytes in &frames {
        check_framing(bytes);
        check_frame(bytes);
        check_handshake(bytes);
    }
    check_keyed(data, &frames);
}

/// The frame, framed again by the codec, comes back whole.
fn check_framing(bytes: &BytesMut) {
    let mut codec = codec();
    let mut framed = BytesMut::new();
    codec
        .encode(Bytes::copy_from_slice(bytes), &mut framed)
        .expect("a frame that was read can be written");
    assert_eq!(
        codec.decode(&mut framed).ok().flatten().as_ref(),
        Some(bytes)
    );
    assert!(framed.is_empty());
}

/// Decodes a frame; one that decodes is encoded again, and that encoding decodes to a
/// frame that encodes to the same bytes (values compared by their encoding, where a NaN
/// equals itself).
fn check_frame(bytes: &[u8]) {
    let Ok(decoded) = frame::decode(bytes) else {
        return;
    };
    // (Arguments the cursor passes but values cannot hold, such as an unassigned simple
    // value, are refused by the node's services as bad arguments: nothing to encode again.)
    let Some(encoded) = encode(&decoded) else {
        return;
    };
    let again = frame::decode(&encoded)
        .unwrap_or_else(|e| panic!("{decoded:?} encodes as {encoded:02x?}, which fails: {e}"));
    assert_eq!(encode(&again), Some(encoded), "{decoded:?} then {again:?}");
    if let PortFrame::Hello { .. } = decoded {
        assert_eq!(again, decoded);
    }
    if let PortFrame::Request(request) = decoded
        && let Ok(args) = request.args.values()
    {
        if mailbox::functions::is_mailbox_function(&request.function) {
            serve_mailbox_call(&request.function, args);
        } else if is_module_function(&request.function) {
            check_module_request(&request.function, args);
        }
    }
}

/// A module request that parses (`ModuleRequest::parse`, as the node's module service
/// does before anything else) parses again, the same, from its own arguments.
fn check_module_request(function: &str, args: Vec<Value>) {
    if let Ok(request) = ModuleRequest::parse(function, args) {
        let again = ModuleRequest::parse(&request.function(), request.clone().into_args());
        assert_eq!(again.as_ref(), Ok(&request));
    }
}

/// A handshake frame that decodes encodes to one that decodes to it.
fn check_handshake(bytes: &[u8]) {
    if let Ok(handshake) = Handshake::decode(bytes) {
        assert_eq!(Handshake::decode(&handshake.encode()), Ok(handshake));
    }
}

/// On a keyed connection (tagged, or encrypted), bytes from a forger are refused; frames
/// sealed with the key come through whole.
fn check_keyed(data: &[u8], frames: &[BytesMut]) {
    let key = GroupKey::from_bytes([7; 32]);
    for encrypt in [false, true] {
        let transcript = Transcript {
            key: key.id(),
            client_nonce: [1; 32],
            client_encrypt: encrypt,
            server_nonce: [2; 32],
            encrypt,
        };
        let receive = || FrameCodec::new(MAX_FRAME, Some(transcript.frame_keys(&key, false).1));
        let (mut forged, mut receiver) = (receive(), receive());
        let mut buffer = BytesMut::from(data);
        if let Ok(Some(frame)) = forged.decode(&mut buffer) {
            panic!("a forged frame passed: {frame:02x?}");
        }
        let send = transcript.frame_keys(&key, true).0;
        let mut sender = FrameCodec::new(MAX_FRAME, Some(send));
        let mut sealed = BytesMut::new();
        for frame in frames {
            sender
                .encode(Bytes::copy_from_slice(frame), &mut sealed)
                .expect("a frame can be sealed");
        }
        for frame in frames {
            let opened = receiver.decode(&mut sealed).expect("a sealed frame opens");
            assert_eq!(opened.as_ref(), Some(frame));
        }
        assert!(sealed.is_empty());
    }
}

fn encode(frame: &PortFrame) -> Option<Vec<u8>> {
    Some(match frame {
        PortFrame::Hello { node, name } => frame::encode_hello(*node, name.as_deref()),
        PortFrame::Request(request) => frame::encode_request(
            request.id,
            &request.function,
            &request.args.values().ok()?,
            request.wants_reply,
        ),
        PortFrame::Reply { id, outcome } => frame::encode_reply(*id, outcome),
    })
}

thread_local! {
    /// A runtime for the mailboxes' async locks, made once per thread.
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread tokio runtime");
}

/// Serves a mailbox call from the network on two small mailboxes: a read returns bytes of
/// at most a mailbox, a write nothing.
fn serve_mailbox_call(function: &str, args: Vec<Value>) {
    let boxes = Mailboxes::new(MailboxConfig::new(2, 1, 1).expect("a mailbox configuration"));
    let outcome = RUNTIME.with(|runtime| {
        runtime.block_on(mailbox::functions::serve_call(Some(&boxes), function, args))
    });
    match outcome {
        Ok(Value::Bytes(data)) => assert!(data.len() <= boxes.config().size),
        Ok(Value::Null) | Err(_) => {}
        Ok(other) => panic!("a mailbox call returned {other:?}"),
    }
}
