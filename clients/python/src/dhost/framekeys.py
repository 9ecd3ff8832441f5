"""The keys of a keyed TCP connection (``docs/wire.md``, "The TCP port"): the proofs and
direction keys derived from the handshake's transcript, and :class:`FrameKey`, which tags
(keyed BLAKE3) or encrypts (ChaCha20-Poly1305) each frame of one direction.
"""

from __future__ import annotations

import hmac
import struct

from .keys import GroupKey, derive_key, keyed_hash, nacl_bindings
from .wire import TAG_LEN

__all__ = [
    "FrameKey",
    "transcript_key",
    "SERVER_PROOF",
    "CLIENT_PROOF",
    "CLIENT_TO_SERVER",
    "SERVER_TO_CLIENT",
]

SERVER_PROOF = "dhost 2026-12-02 connection server proof"
CLIENT_PROOF = "dhost 2026-12-02 connection client proof"
CLIENT_TO_SERVER = "dhost 2026-12-02 connection client to server"
SERVER_TO_CLIENT = "dhost 2026-12-02 connection server to client"


def transcript_key(
    key: GroupKey,
    context: str,
    key_id: bytes,
    client_nonce: bytes,
    client_encrypt: bool,
    server_nonce: bytes,
    encrypt: bool,
) -> bytes:
    """A proof or a direction's key of a keyed connection: ``BLAKE3-derive-key(context,
    K ‖ key-id ‖ client-nonce ‖ client-encrypt ‖ server-nonce ‖ encrypt)``."""
    material = (
        key.connection
        + key_id
        + client_nonce
        + bytes([int(client_encrypt)])
        + server_nonce
        + bytes([int(encrypt)])
    )
    return derive_key(context, material)


class FrameKey:
    """The key of one direction of a keyed connection and the number of its next frame:
    each frame carries a 16-byte tag over its number and bytes (keyed BLAKE3), or is
    encrypted with ChaCha20-Poly1305 and the number as the nonce."""

    def __init__(self, key: bytes, encrypt: bool) -> None:
        self._key = key
        self._encrypt = encrypt
        self._next = 0

    @staticmethod
    def _nonce(n: int) -> bytes:
        return bytes(4) + struct.pack(">Q", n)

    def seal(self, frame: bytes) -> bytes:
        """The frame's bytes then its tag (or its ciphertext then the AEAD's tag)."""
        n, self._next = self._next, self._next + 1
        if self._encrypt:
            return bytes(
                nacl_bindings().crypto_aead_chacha20poly1305_ietf_encrypt(frame, None, self._nonce(n), self._key)
            )
        return frame + keyed_hash(self._key, struct.pack(">Q", n), frame)

    def open(self, sealed: bytes) -> bytes:
        """The frame of ``sealed``, if its tag is right; raises ValueError if not."""
        bad = "a frame with a wrong tag (not from a holder of the group key, or altered)"
        if len(sealed) < TAG_LEN:
            raise ValueError(bad)
        n, self._next = self._next, self._next + 1
        if self._encrypt:
            try:
                return bytes(
                    nacl_bindings().crypto_aead_chacha20poly1305_ietf_decrypt(
                        sealed, None, self._nonce(n), self._key
                    )
                )
            except Exception:
                raise ValueError(bad) from None
        frame, tag = sealed[:-TAG_LEN], sealed[-TAG_LEN:]
        if not hmac.compare_digest(keyed_hash(self._key, struct.pack(">Q", n), frame), tag):
            raise ValueError(bad)
        return frame
