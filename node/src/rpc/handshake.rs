//! Opening a binary connection of the TCP port, on both ends: the magics, and between
//! holders of the group key the handshake that proves it both ways
//! ([`crate::auth::connection`]), after which every frame is tagged (or encrypted).
//!
//! A node with a key refuses a connection without one (and the reverse), saying so to the
//! other end by the magic it answers with, so that the caller's error names the cause.

use super::frame::{Handshake, MAGIC, MAGIC_KEYED, MAX_FRAME};
use crate::auth::Keyring;
use crate::auth::connection::{FrameCodec, Transcript, fresh_nonce, key_for, proof_matches};
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::{FramedRead, FramedWrite};

/// The most bytes of a port's refusal line a caller reads.
const MAX_REFUSAL_LINE: usize = 512;

/// The frames coming in on a connection.
pub type Reader = FramedRead<OwnedReadHalf, FrameCodec>;

/// The frames going out on a connection.
pub type Writer = FramedWrite<OwnedWriteHalf, FrameCodec>;

/// The keys of a node's (or client's) connections.
#[derive(Debug, Clone, Default)]
pub struct ConnectionKeys {
    /// The group's keys, if it has them.
    pub keys: Option<Keyring>,
    /// Whether to ask for encryption.
    pub encrypt: bool,
}

/// Why a connection was refused at its opening.
#[derive(Debug)]
pub struct ConnectionRefused {
    /// Why, for the log.
    pub why: String,
    /// Whether it is counted as unauthenticated (a key on one side only, another key, a
    /// wrong proof), not as malformed.
    pub unauthenticated: bool,
}

impl ConnectionRefused {
    fn malformed(why: impl Into<String>) -> Self {
        ConnectionRefused {
            why: why.into(),
            unauthenticated: false,
        }
    }

    fn unauthenticated(why: impl Into<String>) -> Self {
        ConnectionRefused {
            why: why.into(),
            unauthenticated: true,
        }
    }
}

async fn write_magic(stream: &mut TcpStream, magic: [u8; 4]) -> Result<(), String> {
    stream
        .write_all(&magic)
        .await
        .map_err(|e| format!("cannot write: {e}"))
}

/// The framing of the node's TCP port before (or without) a keyed handshake: a 4-byte
/// big-endian length, then the frame.
pub fn codec() -> FrameCodec {
    FrameCodec::new(MAX_FRAME, None)
}

fn framed(stream: TcpStream) -> (Reader, Writer) {
    let (read, write) = stream.into_split();
    (
        FramedRead::new(read, codec()),
        FramedWrite::new(write, codec()),
    )
}

/// Reads one frame of the handshake within `patience`.
async fn next_handshake(reader: &mut Reader, patience: Duration) -> Result<Handshake, String> {
    match tokio::time::timeout(patience, reader.next()).await {
        Err(_) => Err("the handshake did not arrive in time".to_string()),
        Ok(None) => Err("it closed the connection during the handshake".to_string()),
        Ok(Some(Err(e))) => Err(format!("the handshake: {e}")),
        Ok(Some(Ok(bytes))) => {
            Handshake::decode(&bytes).map_err(|e| format!("a malformed handshake: {e}"))
        }
    }
}

/// The server's end, once the first byte said the connection is binary: reads the magic,
/// answers with its own, and with a key runs the handshake, all within `patience`.
pub async fn accept(
    mut stream: TcpStream,
    keys: &ConnectionKeys,
    patience: Duration,
) -> Result<(Reader, Writer), ConnectionRefused> {
    let mut magic = [0u8; 4];
    match tokio::time::timeout(patience, stream.read_exact(&mut magic)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            return Err(ConnectionRefused::malformed(format!(
                "cannot read the magic: {e}"
            )));
        }
        Err(_) => {
            return Err(ConnectionRefused::malformed(
                "the magic did not arrive in time",
            ));
        }
    }
    let ring = match (magic, &keys.keys) {
        (MAGIC, None) => {
            write_magic(&mut stream, MAGIC)
                .await
                .map_err(ConnectionRefused::malformed)?;
            return Ok(framed(stream));
        }
        (MAGIC, Some(_)) => {
            let _ = write_magic(&mut stream, MAGIC_KEYED).await;
            return Err(ConnectionRefused::unauthenticated(
                "it has no group key (this node has one)",
            ));
        }
        (MAGIC_KEYED, None) => {
            let _ = write_magic(&mut stream, MAGIC).await;
            return Err(ConnectionRefused::unauthenticated(
                "it has a group key, and this node has none",
            ));
        }
        (MAGIC_KEYED, Some(ring)) => ring,
        (other, _) => {
            return Err(ConnectionRefused::malformed(format!(
                "bad magic {other:02x?} (expected {MAGIC:02x?} or {MAGIC_KEYED:02x?})"
            )));
        }
    };
    write_magic(&mut stream, MAGIC_KEYED)
        .await
        .map_err(ConnectionRefused::malformed)?;
    let (mut reader, mut writer) = framed(stream);
    let Handshake::Challenge {
        key: key_id,
        nonce: client_nonce,
        encrypt: client_encrypt,
    } = next_handshake(&mut reader, patience)
        .await
        .map_err(ConnectionRefused::malformed)?
    else {
        return Err(ConnectionRefused::malformed(
            "the handshake does not open with a challenge",
        ));
    };
    let key = match key_for(ring, key_id) {
        Ok(key) => key,
        Err(why) => {
            let refusal = Handshake::Refusal(why.clone()).encode();
            let _ = writer.send(Bytes::from(refusal)).await;
            return Err(ConnectionRefused::unauthenticated(why));
        }
    };
    let transcript = Transcript {
        key: key_id,
        client_nonce,
        client_encrypt,
        server_nonce: fresh_nonce().map_err(|e| ConnectionRefused::malformed(e.to_string()))?,
        encrypt: client_encrypt || keys.encrypt,
    };
    let answer = Handshake::Answer {
        nonce: transcript.server_nonce,
        encrypt: transcript.encrypt,
        proof: transcript.server_proof(key),
    };
    writer
        .send(Bytes::from(answer.encode()))
        .await
        .map_err(|e| ConnectionRefused::malformed(format!("cannot write: {e}")))?;
    let Handshake::Proof(proof) = next_handshake(&mut reader, patience)
        .await
        .map_err(ConnectionRefused::malformed)?
    else {
        return Err(ConnectionRefused::malformed(
            "the handshake goes on without a proof",
        ));
    };
    if !proof_matches(&proof, &transcript.client_proof(key)) {
        return Err(ConnectionRefused::unauthenticated(
            "its proof is wrong: it does not hold the group key",
        ));
    }
    let (send, receive) = transcript.frame_keys(key, false);
    reader.decoder_mut().start(receive);
    writer.encoder_mut().start(send);
    Ok((reader, writer))
}

/// The caller's end: connects to the node at `addr`, sends the magic, and with a key runs
/// the handshake, waiting for each answer within `patience`.
pub async fn open(
    addr: std::net::SocketAddr,
    keys: &ConnectionKeys,
    patience: Duration,
) -> std::io::Result<(Reader, Writer)> {
    let invalid = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidData, why);
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let magic = if keys.keys.is_some() {
        MAGIC_KEYED
    } else {
        MAGIC
    };
    stream.write_all(&magic).await?;
    let (mut reader, mut writer) = framed(stream);
    // A keyed caller opens with its challenge, without waiting for the node's magic.
    let challenge = match &keys.keys {
        Some(ring) => {
            let (key, nonce) = (ring.sending(), fresh_nonce()?);
            let challenge = Handshake::Challenge {
                key: key.id(),
                nonce,
                encrypt: keys.encrypt,
            };
            writer.send(Bytes::from(challenge.encode())).await?;
            Some((key, nonce))
        }
        None => None,
    };
    let mut answer = [0u8; 4];
    reader.get_mut().read_exact(&mut answer).await?;
    if &answer == b"ERR " {
        // A port that turns the connection away says why in a line (over its caps).
        let mut line = Vec::new();
        let mut rest = reader.get_mut().take(MAX_REFUSAL_LINE as u64);
        let _ = tokio::time::timeout(patience, rest.read_to_end(&mut line)).await;
        let line = String::from_utf8_lossy(&line);
        let why: String = line
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        return Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            format!("the node turned the connection away: {why}"),
        ));
    }
    match answer {
        _ if answer == magic => {}
        MAGIC_KEYED => {
            return Err(invalid(
                "the node requires the group's key: give --key-file (or DHOST_KEY_FILE)"
                    .to_string(),
            ));
        }
        MAGIC => {
            return Err(invalid(
                "the node has no group key, and this one has: it takes no keyed connections"
                    .to_string(),
            ));
        }
        _ => {
            return Err(invalid(
                "the other end is not a dhost node (no magic)".to_string(),
            ));
        }
    }
    let Some((group_key, nonce)) = challenge else {
        return Ok((reader, writer));
    };
    let (server_nonce, final_encrypt, proof) = match next_handshake(&mut reader, patience)
        .await
        .map_err(invalid)?
    {
        Handshake::Answer {
            nonce,
            encrypt,
            proof,
        } => (nonce, encrypt, proof),
        Handshake::Refusal(why) => return Err(invalid(format!("the node refused: {why}"))),
        other => return Err(invalid(format!("an unexpected handshake: {other:?}"))),
    };
    if keys.encrypt && !final_encrypt {
        return Err(invalid(
            "the node answered without the encryption asked for".to_string(),
        ));
    }
    let transcript = Transcript {
        key: group_key.id(),
        client_nonce: nonce,
        client_encrypt: keys.encrypt,
        server_nonce,
        encrypt: final_encrypt,
    };
    if !proof_matches(&proof, &transcript.server_proof(group_key)) {
        return Err(invalid(
            "the node's proof is wrong: it does not hold the group key".to_string(),
        ));
    }
    writer
        .send(Bytes::from(
            Handshake::Proof(transcript.client_proof(group_key)).encode(),
        ))
        .await?;
    let (send, receive) = transcript.frame_keys(group_key, true);
    reader.decoder_mut().start(receive);
    writer.encoder_mut().start(send);
    Ok((reader, writer))
}
