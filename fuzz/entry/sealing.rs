//! The body of the `sealing` fuzz target, shared with `tests/fuzz_corpora.rs`: the input
//! as the frames of a datagram, sealed by the gate of a node that tags, one that encrypts
//! and one without a key (`dhost_protocol::auth::Gate::seal`), must open at a gate with the same
//! key (or none, if sealed without) to exactly those bytes, at a keyed gate only once, and
//! at no gate of the other kind. (The `datagram` target sends hostile bytes to the gates.)

use dhost_protocol::auth::datagram::REPLAY_MEMORY;
use dhost_protocol::auth::{Arrival, Gate, GroupKey, Keyring, ReplayGuard};
use dhost_protocol::wire;
use std::time::Instant;

/// How the input arrives: at the group's socket, from this host.
fn arrival() -> Arrival {
    Arrival::to_group(std::net::SocketAddr::from(([127, 0, 0, 1], 4723)))
}

/// The gates: a node with the key that tags, one that encrypts, one without a key.
fn gates() -> [Gate; 3] {
    let ring = || Keyring::new(vec![GroupKey::from_bytes([0x5a; 32])]).expect("one key");
    [
        Gate::new(Some(ring()), false),
        Gate::new(Some(ring()), true),
        Gate::new(None, false),
    ]
}

/// Runs one input; panics if anything panics, or a sealed datagram does not open to what
/// was sealed, or opens where it must not.
pub(crate) fn run(data: &[u8]) {
    let gates = gates();
    let now = Instant::now();
    // The input as the frames of a datagram of node 9's, sealed by each gate: it opens at
    // a gate with the same key (or none, if sealed without) to the same bytes, and at a keyed
    // gate only once.
    let mut plain = Vec::new();
    wire::encode_header(9, None, &mut plain);
    plain.extend_from_slice(data);
    for (from, to) in [(0, 1), (1, 0), (1, 2), (2, 0), (2, 2)] {
        let (sender, receiver) = (&gates[from], &gates[to]);
        let sealed = sender.seal(&plain, false).to_vec();
        let header = wire::read_header(&mut &sealed[..]).expect("a sealed header reads");
        let mut replay = ReplayGuard::new(REPLAY_MEMORY);
        let same_kind = sender.is_keyed() == receiver.is_keyed();
        let mut bytes = sealed.clone();
        match receiver.open(&header, &mut bytes, arrival(), &mut replay, now) {
            Ok(frames) => {
                assert!(same_kind, "opened by a gate without the sender's key");
                assert_eq!(frames, data, "opened to other bytes than sealed");
            }
            Err(why) => assert!(!same_kind, "a sealed datagram refused: {why}"),
        }
        // (A node without a key has no replay windows: anyone could forge anyway.)
        let mut again = sealed.clone();
        assert!(
            !receiver.is_keyed()
                || receiver
                    .open(&header, &mut again, arrival(), &mut replay, now)
                    .is_err(),
            "opened twice"
        );
    }
}
