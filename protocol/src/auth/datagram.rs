//! Sealing and opening datagrams: the [`Gate`] every datagram a node sends leaves through
//! (numbered with its packet number, timed, tagged with the group key, encrypted with
//! `--encrypt`) and every datagram it receives is checked at, before anything in it is
//! decoded but its header: where it came from (an unkeyed node on loopback takes
//! datagrams from this host only), the tag, the socket it was meant for, its age (and
//! whether it was sent before this gate was made: by a node's earlier incarnation, or
//! captured before this one started), and the receiving socket's replay window.
//!
//! The tag covers every byte of the datagram but itself: the header (the sender id,
//! the stream's sequence number, the packet number, the time, the protection mode and key
//! id) and the frames. A MAC is keyed BLAKE3, cut to 16 bytes (chosen by
//! `benches/auth.rs`: a 64 KB datagram costs ~24 µs, against ~39 µs for HMAC-SHA256 with
//! the CPU's SHA extensions, and ~48 µs for encrypting it); an encrypted
//! datagram's frames are XChaCha20-Poly1305's ciphertext, with the header as associated
//! data and the sender id and packet number as the nonce.

use super::key::{GroupKey, Keyring};
use super::replay::{ReplayGuard, Verdict};
use crate::clock::{MAX_CLOCK_SKEW, unix_millis};
use crate::wire::{self, Header, Protection, TAG_LEN};
use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use thiserror::Error;

/// How long a socket remembers a sender's replay window after its last datagram: past
/// it, a replay is refused as stale (twice the skew, and a margin).
pub const REPLAY_MEMORY: Duration = Duration::from_secs(150);

/// Why a received datagram was not opened: it cannot be read, or the gate refused it.
#[derive(Debug, Error, PartialEq)]
pub enum Unopened {
    /// Its header or frames are malformed.
    #[error(transparent)]
    Malformed(#[from] crate::wire::WireError),
    /// The gate refused it.
    #[error(transparent)]
    Refused(#[from] Rejected),
}

/// Why a datagram was refused at the gate.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum Rejected {
    /// This node has a key; the datagram has no tag.
    #[error(
        "it carries no tag: its sender has no group key (this node has one: give that node \
         the same --key-file)"
    )]
    Unkeyed,
    /// This node has no key; the datagram has a tag.
    #[error(
        "it carries a tag: its sender has a group key and this node has none (give it the \
         group's --key-file)"
    )]
    Keyed,
    /// The tag is made with a key this node does not hold.
    #[error("its tag is made with key {0}, which this node does not hold")]
    UnknownKey(String),
    /// The tag is wrong.
    #[error("its tag is wrong (not made with the group key, or the datagram was altered)")]
    BadTag,
    /// A datagram sent to one node came to the group's socket, or the reverse.
    #[error("it was sent to {}, not here (a replay)", if *.0 { "one node" } else { "the group" })]
    Misdirected(bool),
    /// It was sent too long ago (or its sender's clock is far from this node's).
    #[error(
        "it was sent {0} ago by its sender's clock, more than the {skew} clocks may differ \
         by (a replay, or a clock that is wrong)",
        skew = humantime::format_duration(MAX_CLOCK_SKEW)
    )]
    Stale(String),
    /// Its packet number was seen before.
    #[error("packet {0} of its sender came before (a replay)")]
    Replayed(u64),
    /// Its packet number is older than its sender's replay window.
    #[error(
        "packet {0} of its sender is older than the last {window} (a replay, or held up on \
         the way)",
        window = super::replay::WINDOW
    )]
    TooOld(u64),
    /// It was sent before this node started, by its sender's clock: a capture replayed
    /// into a node that has no replay window of it yet.
    #[error(
        "it was sent {0} before this node started, by its sender's clock (a replay, or a \
         sender whose clock is behind)"
    )]
    BeforeStart(String),
    /// It came from another host to an unkeyed node on loopback.
    #[error(
        "it came from another host, and this node has no group key and runs on loopback: it \
         takes datagrams from this host only (give every node a --key-file to span hosts)"
    )]
    OffHost,
}

impl Rejected {
    /// Whether it is counted as a replay (its tag was right), not as unauthenticated.
    pub fn is_replay(&self) -> bool {
        matches!(
            self,
            Rejected::Misdirected(_)
                | Rejected::Stale(_)
                | Rejected::Replayed(_)
                | Rejected::TooOld(_)
                | Rejected::BeforeStart(_)
        )
    }

    /// Whether it says how a node is set up (a key on one side only, or another key),
    /// not an attack, and which difference it is (a bit): said once per source, not per
    /// datagram. 0 for any other refusal.
    pub fn setup_bit(&self) -> u8 {
        match self {
            Rejected::Unkeyed => 1,
            Rejected::Keyed => 2,
            Rejected::UnknownKey(_) => 4,
            Rejected::OffHost => 8,
            _ => 0,
        }
    }
}

/// Seals what a node sends and checks what it receives (see the module's documentation).
#[derive(Debug)]
pub struct Gate {
    keys: Option<Keyring>,
    encrypt: bool,
    /// The next packet number.
    packets: AtomicU64,
    /// When the gate was made (milliseconds since the Unix epoch): a keyed datagram sent
    /// before it is refused.
    born: u64,
    /// Whether only datagrams from this host's own addresses come in (an unkeyed node on
    /// loopback).
    this_host_only: bool,
}

impl Gate {
    /// A gate with the group's `keys` (or none: datagrams go out unprotected and only
    /// unprotected ones come in), encrypting if `encrypt`, made now (by the wall clock).
    pub fn new(keys: Option<Keyring>, encrypt: bool) -> Self {
        Self::new_at(keys, encrypt, unix_millis())
    }

    /// [`Self::new`], made at `unix_ms` (milliseconds since the Unix epoch): a keyed
    /// datagram sent before then is refused.
    pub fn new_at(keys: Option<Keyring>, encrypt: bool, unix_ms: u64) -> Self {
        Gate {
            keys,
            encrypt,
            packets: AtomicU64::new(1),
            born: unix_ms,
            this_host_only: false,
        }
    }

    /// The gate of a node on `iface`: without a key, on loopback, it takes datagrams from
    /// loopback addresses alone (whatever other sockets of the host joined the group on
    /// other interfaces, nothing from another host gets in).
    pub fn on_interface(mut self, iface: std::net::Ipv4Addr) -> Self {
        self.this_host_only = self.keys.is_none() && iface.is_loopback();
        self
    }

    /// Whether the node has a group key.
    pub fn is_keyed(&self) -> bool {
        self.keys.is_some()
    }

    /// The node's keys.
    pub fn keys(&self) -> Option<&Keyring> {
        self.keys.as_ref()
    }

    /// Whether it encrypts what it sends.
    pub fn encrypts(&self) -> bool {
        self.encrypt && self.keys.is_some()
    }

    /// Seals `datagram` (a header [`wire::encode_header`] wrote, then frames) as its next
    /// packet, to one node (`unicast`) or to the group: the node sends [`Sealed::header`] then
    /// [`Sealed::body`] as one datagram (a resend too is a packet of its own: numbered,
    /// timed and tagged anew).
    pub fn seal<'a>(&self, datagram: &'a [u8], unicast: bool) -> Sealed<'a> {
        self.seal_at(datagram, unicast, unix_millis())
    }

    /// [`Self::seal`], stamped as sent at `unix_ms` (milliseconds since the Unix epoch).
    pub fn seal_at<'a>(&self, datagram: &'a [u8], unicast: bool, unix_ms: u64) -> Sealed<'a> {
        let header_len = wire::own_header_len(datagram);
        let (header_bytes, body) = datagram.split_at(header_len);
        let mut sealed = Sealed {
            header: [0u8; wire::MAX_HEADER],
            header_len,
            body: std::borrow::Cow::Borrowed(body),
        };
        let header = &mut sealed.header[..header_len];
        header.copy_from_slice(header_bytes);
        let packet = self.packets.fetch_add(1, Ordering::Relaxed);
        let key = self.keys.as_ref().map(Keyring::sending);
        let protection = match key {
            None => Protection::None,
            Some(_) if self.encrypt => Protection::Encrypted,
            Some(_) => Protection::Mac,
        };
        let id = key.map(GroupKey::id).unwrap_or_default();
        wire::seal_header(header, packet, unix_ms, protection, unicast, id);
        match key {
            None => {}
            Some(key) if self.encrypt => {
                let mut ciphertext = body.to_vec();
                let sender = wire::own_sender(header);
                let tag = encrypt(key, sender, packet, header, &mut ciphertext);
                wire::set_tag(header, &tag);
                sealed.body = std::borrow::Cow::Owned(ciphertext);
            }
            Some(key) => wire::set_tag(header, &mac(key, header, body)),
        }
        sealed
    }

    /// Opens a datagram whose `header` was read from `datagram` ([`Self::open`]) and
    /// decodes its frames.
    pub fn open_frames(
        &self,
        header: &Header,
        datagram: &mut [u8],
        arrival: Arrival,
        replay: &mut ReplayGuard,
        now: Instant,
    ) -> Result<Vec<crate::wire::Frame>, Unopened> {
        let frames = self.open(header, datagram, arrival, replay, now)?;
        Ok(wire::decode_frames(frames)?)
    }

    /// Checks a datagram whose `header` was read from `datagram`, which came as `arrival`
    /// says, at `now` (and now by the wall clock): where it came from, its tag, where it
    /// was sent, its age and `replay`'s window of its sender. Returns its frames
    /// (decrypted in place if they were encrypted).
    pub fn open<'a>(
        &self,
        header: &Header,
        datagram: &'a mut [u8],
        arrival: Arrival,
        replay: &mut ReplayGuard,
        now: Instant,
    ) -> Result<&'a [u8], Rejected> {
        self.open_at(header, datagram, arrival, replay, now, unix_millis())
    }

    /// [`Self::open`] at `now`, which is `unix_ms` by the wall clock (milliseconds since
    /// the Unix epoch): the time of sending is judged against it.
    pub fn open_at<'a>(
        &self,
        header: &Header,
        datagram: &'a mut [u8],
        arrival: Arrival,
        replay: &mut ReplayGuard,
        now: Instant,
        unix_ms: u64,
    ) -> Result<&'a [u8], Rejected> {
        let Arrival { from, unicast } = arrival;
        if self.this_host_only && !from.ip().is_loopback() {
            return Err(Rejected::OffHost);
        }
        let Some(keys) = &self.keys else {
            return match header.auth.protection {
                Protection::None => Ok(&datagram[header.len..]),
                _ => Err(Rejected::Keyed),
            };
        };
        if header.auth.protection == Protection::None {
            return Err(Rejected::Unkeyed);
        }
        let key = keys
            .by_id(header.auth.key)
            .ok_or_else(|| Rejected::UnknownKey(hex::encode(header.auth.key)))?;
        let (head, body) = datagram.split_at_mut(header.len);
        let covered = &head[..header.len - TAG_LEN];
        let authentic = match header.auth.protection {
            Protection::Mac => bool::from(mac(key, head, body).ct_eq(&header.auth.tag)),
            _ => decrypt(key, header, covered, body),
        };
        if !authentic {
            return Err(Rejected::BadTag);
        }
        if header.auth.unicast != unicast {
            return Err(Rejected::Misdirected(header.auth.unicast));
        }
        let skew = unix_ms.abs_diff(header.sent_at);
        if skew > MAX_CLOCK_SKEW.as_millis() as u64 {
            return Err(Rejected::Stale(
                humantime::format_duration(Duration::from_secs(skew / 1000)).to_string(),
            ));
        }
        if header.sent_at < self.born {
            let before = Duration::from_millis(self.born - header.sent_at);
            return Err(Rejected::BeforeStart(
                humantime::format_duration(before).to_string(),
            ));
        }
        match replay.check(header.sender, header.packet, now) {
            Verdict::New => Ok(body),
            Verdict::Replayed => Err(Rejected::Replayed(header.packet)),
            Verdict::TooOld => Err(Rejected::TooOld(header.packet)),
        }
    }
}

/// How a datagram came in: from where, and to which socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// Its source address.
    pub from: SocketAddr,
    /// Whether it came to the node's own socket (sent to it alone), not the group's.
    pub unicast: bool,
}

impl Arrival {
    /// A datagram from `from` to the group's socket.
    pub fn to_group(from: SocketAddr) -> Self {
        Arrival {
            from,
            unicast: false,
        }
    }

    /// A datagram from `from` to the node's own socket.
    pub fn to_node(from: SocketAddr) -> Self {
        Arrival {
            from,
            unicast: true,
        }
    }
}

/// A datagram sealed for sending: its header, numbered and tagged, and its frames (their
/// ciphertext when encrypted).
#[derive(Debug)]
pub struct Sealed<'a> {
    header: [u8; wire::MAX_HEADER],
    header_len: usize,
    body: std::borrow::Cow<'a, [u8]>,
}

impl Sealed<'_> {
    /// The header.
    pub fn header(&self) -> &[u8] {
        &self.header[..self.header_len]
    }

    /// The frames, or their ciphertext.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The whole datagram, in one buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        [self.header(), self.body()].concat()
    }
}

/// The MAC of a datagram: keyed BLAKE3 over its header (less the tag, its last bytes)
/// and its frames, cut to [`TAG_LEN`] bytes.
fn mac(key: &GroupKey, header: &[u8], body: &[u8]) -> [u8; TAG_LEN] {
    let mut hasher = blake3::Hasher::new_keyed(key.datagram_mac());
    hasher.update(&header[..header.len() - TAG_LEN]);
    hasher.update(body);
    let mut tag = [0u8; TAG_LEN];
    hasher.finalize_xof().fill(&mut tag);
    tag
}

/// The nonce of an encrypted datagram: its sender id and packet number (unique for as
/// long as sender ids are: each is drawn at random when a node starts), then zeros.
fn nonce(sender: u64, packet: u64) -> chacha20poly1305::XNonce {
    let mut nonce = [0u8; 24];
    nonce[..8].copy_from_slice(&sender.to_be_bytes());
    nonce[8..16].copy_from_slice(&packet.to_be_bytes());
    nonce.into()
}

/// Encrypts `body` (packet `packet` of `sender`) in place, with the sealed `header`
/// (less its tag) as associated data; returns the tag.
fn encrypt(
    key: &GroupKey,
    sender: u64,
    packet: u64,
    header: &[u8],
    body: &mut [u8],
) -> [u8; TAG_LEN] {
    let cipher = XChaCha20Poly1305::new(key.datagram_aead().into());
    cipher
        .encrypt_in_place_detached(
            &nonce(sender, packet),
            &header[..header.len() - TAG_LEN],
            body,
        )
        .map(Into::into)
        // (Only a body over 256 GiB fails.)
        .unwrap_or_default()
}

/// Decrypts `body` in place if its tag is right; whether it was.
fn decrypt(key: &GroupKey, header: &Header, covered: &[u8], body: &mut [u8]) -> bool {
    let cipher = XChaCha20Poly1305::new(key.datagram_aead().into());
    cipher
        .decrypt_in_place_detached(
            &nonce(header.sender, header.packet),
            covered,
            body,
            (&header.auth.tag).into(),
        )
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(sender: u64) -> Vec<u8> {
        let mut d = Vec::new();
        wire::encode_header(sender, Some(1), &mut d);
        wire::encode_query(&mut d);
        d.extend_from_slice(b"\x82\x09\x0a"); // a frame of a later kind: [9, 10]
        d
    }

    fn keyed(key: u8, encrypt: bool) -> Gate {
        let ring = Keyring::new(vec![GroupKey::from_bytes([key; 32])]).expect("one key");
        Gate::new(Some(ring), encrypt)
    }

    fn local() -> SocketAddr {
        "127.0.0.1:4000".parse().unwrap()
    }

    /// Opens `bytes` at `gate` as a datagram that came to the group's socket.
    fn open(gate: &Gate, bytes: &[u8], replay: &mut ReplayGuard) -> Result<Vec<u8>, Rejected> {
        let mut bytes = bytes.to_vec();
        let header = wire::read_header(&mut &bytes[..]).expect("a header");
        let arrival = Arrival::to_group(local());
        gate.open(&header, &mut bytes, arrival, replay, Instant::now())
            .map(<[u8]>::to_vec)
    }

    #[test]
    fn sealed_datagrams_open_once_with_the_key_alone() {
        for encrypt in [false, true] {
            let plain = datagram(5);
            let frames = plain[wire::own_header_len(&plain)..].to_vec();
            let receiver = keyed(1, false);
            let sender = keyed(1, encrypt);
            let mut replay = ReplayGuard::new(REPLAY_MEMORY);
            let sealed = sender.seal(&plain, false).to_vec();
            assert_eq!(sealed.len(), plain.len(), "the tag is in the header's room");
            assert_eq!(
                encrypt,
                !sealed.ends_with(&frames),
                "frames hidden iff encrypted"
            );
            assert_eq!(open(&receiver, &sealed, &mut replay), Ok(frames.clone()));
            assert_eq!(
                open(&receiver, &sealed, &mut replay),
                Err(Rejected::Replayed(1))
            );
            // Every byte is covered: change any and the tag fails (or, for the auth
            // field's mode and key id, the datagram is refused as well).
            for at in 0..sealed.len() {
                let mut altered = sealed.clone();
                altered[at] ^= 0x01;
                let mut fresh = ReplayGuard::new(REPLAY_MEMORY);
                let Ok(header) = wire::read_header(&mut &altered[..]) else {
                    continue;
                };
                let arrival = Arrival::to_group(local());
                let result =
                    receiver.open(&header, &mut altered, arrival, &mut fresh, Instant::now());
                assert!(result.is_err(), "byte {at} changed, still accepted");
            }
            // Another key, no key, the other socket.
            let other = keyed(2, false);
            let fresh = &mut ReplayGuard::new(REPLAY_MEMORY);
            assert!(matches!(
                open(&other, &sealed, fresh),
                Err(Rejected::UnknownKey(_))
            ));
            let unkeyed = Gate::new(None, false);
            assert_eq!(open(&unkeyed, &sealed, fresh), Err(Rejected::Keyed));
            let unprotected = unkeyed.seal(&plain, false).to_vec();
            assert_eq!(open(&receiver, &unprotected, fresh), Err(Rejected::Unkeyed));
            assert_eq!(open(&unkeyed, &unprotected, fresh), Ok(frames.clone()));
            let status = sender.seal(&plain, true).to_vec();
            assert_eq!(
                open(&receiver, &status, fresh),
                Err(Rejected::Misdirected(true))
            );
        }
    }

    #[test]
    fn datagrams_sent_before_a_gate_was_made_are_refused() {
        let sender = keyed(1, false);
        let captured = sender.seal(&datagram(5), false).to_vec();
        std::thread::sleep(Duration::from_millis(5));
        let restarted = keyed(1, false);
        let mut replay = ReplayGuard::new(REPLAY_MEMORY);
        let refused = open(&restarted, &captured, &mut replay).unwrap_err();
        assert!(matches!(refused, Rejected::BeforeStart(_)), "{refused}");
        assert!(refused.is_replay());
        let fresh = sender.seal(&datagram(5), false).to_vec();
        assert!(open(&restarted, &fresh, &mut replay).is_ok());
    }

    #[test]
    fn an_unkeyed_loopback_gate_takes_this_hosts_datagrams_alone() {
        let loopback = std::net::Ipv4Addr::LOCALHOST;
        let gate = Gate::new(None, false).on_interface(loopback);
        let plain = Gate::new(None, false).seal(&datagram(5), false).to_vec();
        let mut replay = ReplayGuard::new(REPLAY_MEMORY);
        let header = wire::read_header(&mut &plain[..]).expect("a header");
        let mut at = |from: &str| {
            let arrival = Arrival::to_group(from.parse().unwrap());
            gate.open(
                &header,
                &mut plain.clone(),
                arrival,
                &mut replay,
                Instant::now(),
            )
            .map(drop)
        };
        assert_eq!(at("127.0.0.1:9"), Ok(()));
        assert_eq!(at("10.0.0.2:9"), Err(Rejected::OffHost));
        assert_eq!(Rejected::OffHost.setup_bit(), 8, "said once per source");
        // A keyed gate, or one on another interface, goes by the key.
        let lan = Gate::new(None, false).on_interface("10.0.0.1".parse().unwrap());
        let arrival = Arrival::to_group("10.0.0.2:9".parse().unwrap());
        let mut bytes = plain.clone();
        let opened = lan.open(&header, &mut bytes, arrival, &mut replay, Instant::now());
        assert!(opened.is_ok());
    }

    #[test]
    fn each_sending_is_a_packet_of_its_own() {
        let gate = keyed(1, false);
        let receiver = keyed(1, false);
        let plain = datagram(5);
        let first = gate.seal(&plain, false).to_vec();
        let again = gate.seal(&plain, false).to_vec();
        let number = |d: &[u8]| wire::read_header(&mut &d[..]).expect("a header").packet;
        assert_eq!((number(&first), number(&again)), (1, 2));
        let mut replay = ReplayGuard::new(REPLAY_MEMORY);
        assert!(open(&receiver, &first, &mut replay).is_ok());
        assert!(
            open(&receiver, &again, &mut replay).is_ok(),
            "a resend is not a replay"
        );
    }

    #[test]
    fn a_keyed_datagram_is_judged_by_when_it_was_sent_on_a_made_up_clock() {
        let at = 1_800_000_000_000; // (2027-01-15, milliseconds since the Unix epoch)
        let ring = || Keyring::new(vec![GroupKey::from_bytes([3; 32])]).expect("one key");
        let receiver = Gate::new_at(Some(ring()), false, at);
        let sender = Gate::new_at(Some(ring()), false, at - 600_000);
        let mut replay = ReplayGuard::new(REPLAY_MEMORY);
        let mut open_at = |sent: u64, now: u64| {
            let mut bytes = sender.seal_at(&datagram(5), false, sent).to_vec();
            let header = wire::read_header(&mut &bytes[..]).expect("a header");
            let arrival = Arrival::to_group(local());
            receiver
                .open_at(
                    &header,
                    &mut bytes,
                    arrival,
                    &mut replay,
                    Instant::now(),
                    now,
                )
                .map(|_| ())
        };
        // Sent before the receiver's gate was made (a replay of an earlier run's).
        assert_eq!(
            open_at(at - 1500, at),
            Err(Rejected::BeforeStart("1s 500ms".into()))
        );
        assert_eq!(open_at(at, at), Ok(()));
        // Within the skew clocks may have, late or early.
        assert_eq!(open_at(at + 1000, at + 60_000), Ok(()));
        assert_eq!(open_at(at + 61_000, at + 2000), Ok(()));
        // Past it, either way.
        assert_eq!(
            open_at(at + 1000, at + 62_000),
            Err(Rejected::Stale("1m 1s".into()))
        );
        assert_eq!(
            open_at(at + 64_000, at + 2000),
            Err(Rejected::Stale("1m 2s".into()))
        );
    }
}
