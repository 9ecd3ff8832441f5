//! Keyed connections to a node's TCP port: the mutual challenge-response that proves both
//! ends hold the group key without sending it, the per-connection keys it derives, and
//! the [`FrameCodec`] that tags (or, with `--encrypt`, encrypts) every frame after it.
//!
//! ```text
//! client → server   [9, key-id, client-nonce, encrypt]          challenge
//! server → client   [10, server-nonce, encrypt, server-proof]   answer (or [11, why]: refused)
//! client → server   [12, client-proof]                          proof
//! ```
//!
//! Nonces are 32 random bytes from each side. With `K` the group key's connection key and
//! `T` the transcript (key id, both nonces, both encrypt flags), each proof and each
//! direction's key is `BLAKE3-derive-key(context, K ‖ T)` with a context of its own: a
//! proof cannot be replayed (the other side's nonce is fresh), nor reflected (the two
//! proofs have different contexts), nor turned into a key. After the proof, every frame
//! carries a 16-byte tag over its bytes and its number in its direction (0, 1, 2, ...;
//! implicit, as TCP keeps the order): keyed BLAKE3, or ChaCha20-Poly1305 with the number
//! as the nonce when the connection is encrypted (either side asked for it).

use super::key::{GroupKey, KeyId, Keyring};
use bytes::{Bytes, BytesMut};
use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use subtle::ConstantTimeEq;
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

/// The length of a nonce of the handshake.
pub const NONCE_LEN: usize = 32;

/// The length of a proof.
pub const PROOF_LEN: usize = 32;

/// The length of a frame's tag.
pub const FRAME_TAG_LEN: usize = 16;

mod context {
    pub(super) const SERVER_PROOF: &str = "dhost 2026-12-02 connection server proof";
    pub(super) const CLIENT_PROOF: &str = "dhost 2026-12-02 connection client proof";
    pub(super) const CLIENT_TO_SERVER: &str = "dhost 2026-12-02 connection client to server";
    pub(super) const SERVER_TO_CLIENT: &str = "dhost 2026-12-02 connection server to client";
}

/// A nonce of the handshake.
pub type Nonce = [u8; NONCE_LEN];

/// A proof of holding the key.
pub type Proof = [u8; PROOF_LEN];

/// A fresh nonce from the operating system's random source.
pub fn fresh_nonce() -> std::io::Result<Nonce> {
    let mut nonce = [0u8; NONCE_LEN];
    super::key::fill_random(&mut nonce)?;
    Ok(nonce)
}

/// What both ends of a handshake agreed on: the transcript every proof and key is
/// derived from.
#[derive(Debug, Clone)]
pub struct Transcript {
    /// The key's id.
    pub key: KeyId,
    /// The client's nonce.
    pub client_nonce: Nonce,
    /// Whether the client asked for encryption.
    pub client_encrypt: bool,
    /// The server's nonce.
    pub server_nonce: Nonce,
    /// Whether the connection is encrypted (the server's answer).
    pub encrypt: bool,
}

impl Transcript {
    fn derive(&self, key: &GroupKey, context: &str) -> [u8; 32] {
        let mut material = Vec::with_capacity(32 + 4 + 2 * NONCE_LEN + 2);
        material.extend_from_slice(key.connection());
        material.extend_from_slice(&self.key);
        material.extend_from_slice(&self.client_nonce);
        material.push(u8::from(self.client_encrypt));
        material.extend_from_slice(&self.server_nonce);
        material.push(u8::from(self.encrypt));
        let derived = blake3::derive_key(context, &material);
        zeroize::Zeroize::zeroize(&mut material);
        derived
    }

    /// The server's proof.
    pub fn server_proof(&self, key: &GroupKey) -> Proof {
        self.derive(key, context::SERVER_PROOF)
    }

    /// The client's proof.
    pub fn client_proof(&self, key: &GroupKey) -> Proof {
        self.derive(key, context::CLIENT_PROOF)
    }

    /// The keys of the connection's frames, for the client (`client`) or the server.
    pub fn frame_keys(&self, key: &GroupKey, client: bool) -> (FrameKey, FrameKey) {
        let to_server = FrameKey::new(self.derive(key, context::CLIENT_TO_SERVER), self.encrypt);
        let to_client = FrameKey::new(self.derive(key, context::SERVER_TO_CLIENT), self.encrypt);
        if client {
            (to_server, to_client)
        } else {
            (to_client, to_server)
        }
    }
}

/// Whether `proof` is `expected` (in constant time).
pub fn proof_matches(proof: &[u8], expected: &Proof) -> bool {
    proof.len() == PROOF_LEN && bool::from(proof.ct_eq(expected))
}

/// The key of one direction of a connection, and the number of the next frame.
pub struct FrameKey {
    key: zeroize::Zeroizing<[u8; 32]>,
    encrypt: bool,
    next: u64,
}

impl std::fmt::Debug for FrameKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameKey")
            .field("encrypt", &self.encrypt)
            .field("next", &self.next)
            .finish()
    }
}

impl FrameKey {
    fn new(key: [u8; 32], encrypt: bool) -> Self {
        FrameKey {
            key: zeroize::Zeroizing::new(key),
            encrypt,
            next: 0,
        }
    }

    fn aead_nonce(n: u64) -> chacha20poly1305::Nonce {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&n.to_be_bytes());
        nonce.into()
    }

    fn mac(&self, n: u64, frame: &[u8]) -> [u8; FRAME_TAG_LEN] {
        let mut hasher = blake3::Hasher::new_keyed(&self.key);
        hasher.update(&n.to_be_bytes());
        hasher.update(frame);
        let mut tag = [0u8; FRAME_TAG_LEN];
        hasher.finalize_xof().fill(&mut tag);
        tag
    }

    /// Tags (or encrypts) the next frame: its bytes, then the tag.
    pub fn seal(&mut self, frame: &[u8]) -> Vec<u8> {
        let n = self.next;
        self.next += 1;
        let mut out = Vec::with_capacity(frame.len() + FRAME_TAG_LEN);
        out.extend_from_slice(frame);
        let tag: [u8; FRAME_TAG_LEN] = if self.encrypt {
            ChaCha20Poly1305::new((&*self.key).into())
                .encrypt_in_place_detached(&Self::aead_nonce(n), &[], &mut out)
                .map(Into::into)
                // (Only a frame over 256 GiB fails; frames are at most 1 MiB.)
                .unwrap_or_default()
        } else {
            self.mac(n, frame)
        };
        out.extend_from_slice(&tag);
        out
    }

    /// Checks (or decrypts) the next frame in place, leaving its bytes without the tag.
    pub fn open(&mut self, frame: &mut BytesMut) -> Result<(), std::io::Error> {
        let bad = || {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "a frame with a wrong tag (not from a holder of the group key, or altered)",
            )
        };
        if frame.len() < FRAME_TAG_LEN {
            return Err(bad());
        }
        let n = self.next;
        self.next += 1;
        let tag = frame.split_off(frame.len() - FRAME_TAG_LEN);
        let authentic = if self.encrypt {
            ChaCha20Poly1305::new((&*self.key).into())
                .decrypt_in_place_detached(&Self::aead_nonce(n), &[], frame, tag[..].into())
                .is_ok()
        } else {
            bool::from(self.mac(n, frame).ct_eq(&tag[..]))
        };
        if authentic { Ok(()) } else { Err(bad()) }
    }
}

/// The framing of a connection: a 4-byte big-endian length, then the frame; after a
/// keyed handshake, each frame tagged (or encrypted) with its direction's key.
#[derive(Debug)]
pub struct FrameCodec {
    framing: LengthDelimitedCodec,
    key: Option<FrameKey>,
}

impl FrameCodec {
    /// Frames of at most `max` bytes (the tag not counted), tagged with `key` if given.
    pub fn new(max: usize, key: Option<FrameKey>) -> Self {
        let tag = if key.is_some() { FRAME_TAG_LEN } else { 0 };
        FrameCodec {
            framing: LengthDelimitedCodec::builder()
                .length_field_length(4)
                .max_frame_length(max + tag)
                .new_codec(),
            key,
        }
    }
}

impl FrameCodec {
    /// Tags (or checks) every frame from now on with `key`: the handshake is over.
    pub fn start(&mut self, key: FrameKey) {
        let max = self.framing.max_frame_length();
        self.framing.set_max_frame_length(max + FRAME_TAG_LEN);
        self.key = Some(key);
    }
}

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, std::io::Error> {
        let Some(mut frame) = self.framing.decode(src)? else {
            return Ok(None);
        };
        if let Some(key) = &mut self.key {
            key.open(&mut frame)?;
        }
        Ok(Some(frame))
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = std::io::Error;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        match &mut self.key {
            None => self.framing.encode(item, dst),
            Some(key) => self.framing.encode(Bytes::from(key.seal(&item)), dst),
        }
    }
}

/// Which key a client's challenge names, from the server's keys: the key, or why the
/// connection is refused.
pub fn key_for(keys: &Keyring, id: KeyId) -> Result<&GroupKey, String> {
    keys.by_id(id).ok_or_else(|| {
        format!(
            "it uses key {}, which this node does not hold (it holds {})",
            hex::encode(id),
            keys.ids()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcript(encrypt: bool) -> Transcript {
        Transcript {
            key: [1, 2, 3, 4],
            client_nonce: [5; NONCE_LEN],
            client_encrypt: encrypt,
            server_nonce: [6; NONCE_LEN],
            encrypt,
        }
    }

    #[test]
    fn proofs_and_keys_depend_on_everything() {
        let key = GroupKey::from_bytes([7; 32]);
        let t = transcript(false);
        assert_ne!(t.server_proof(&key), t.client_proof(&key));
        let mut other = t.clone();
        other.server_nonce[0] ^= 1;
        assert_ne!(other.client_proof(&key), t.client_proof(&key));
        let mut other = t.clone();
        other.encrypt = true;
        assert_ne!(other.server_proof(&key), t.server_proof(&key));
        assert_ne!(
            t.client_proof(&GroupKey::from_bytes([8; 32])),
            t.client_proof(&key)
        );
        assert!(proof_matches(&t.client_proof(&key), &t.client_proof(&key)));
        assert!(!proof_matches(
            &t.client_proof(&key)[..31],
            &t.client_proof(&key)
        ));
    }

    #[test]
    fn frames_go_through_once_in_order_and_unaltered() {
        for encrypt in [false, true] {
            let key = GroupKey::from_bytes([7; 32]);
            let t = transcript(encrypt);
            let (mut client_send, _) = t.frame_keys(&key, true);
            let (_, mut server_receive) = t.frame_keys(&key, false);
            let first = client_send.seal(b"first frame");
            let second = client_send.seal(b"second frame");
            assert_eq!(first.len(), 11 + FRAME_TAG_LEN);
            assert_eq!(
                encrypt,
                !first.windows(5).any(|w| w == b"first"),
                "readable unless encrypted"
            );
            let mut frame = BytesMut::from(&first[..]);
            server_receive.open(&mut frame).expect("authentic");
            assert_eq!(&frame[..], b"first frame");
            // A replay of the first frame in the second's place fails, and so does any
            // change of a byte.
            let (_, mut receive) = t.frame_keys(&key, false);
            receive
                .open(&mut BytesMut::from(&first[..]))
                .expect("first");
            assert!(receive.open(&mut BytesMut::from(&first[..])).is_err());
            let (_, mut receive) = t.frame_keys(&key, false);
            let mut altered = second.clone();
            altered[0] ^= 1;
            receive
                .open(&mut BytesMut::from(&first[..]))
                .expect("first");
            assert!(receive.open(&mut BytesMut::from(&altered[..])).is_err());
            assert!(
                server_receive
                    .open(&mut BytesMut::from(&b"short"[..]))
                    .is_err()
            );
        }
    }

    #[test]
    fn the_codec_round_trips_and_bounds_frames() {
        let key = GroupKey::from_bytes([9; 32]);
        let t = transcript(false);
        let (send, _) = t.frame_keys(&key, true);
        let (_, receive) = t.frame_keys(&key, false);
        let mut writer = FrameCodec::new(64, Some(send));
        let mut reader = FrameCodec::new(64, Some(receive));
        let mut wire = BytesMut::new();
        writer
            .encode(Bytes::from_static(&[0xab; 64]), &mut wire)
            .expect("fits");
        let frame = reader.decode(&mut wire).expect("authentic").expect("whole");
        assert_eq!(&frame[..], &[0xab; 64]);
        let mut too_long = BytesMut::from(&[0, 0, 0, 200][..]);
        assert!(reader.decode(&mut too_long).is_err());
    }
}
