"""Group keys (``dhost keygen``, ``--key-file``): reading a key file, and what a holder of
the key does with it: sealing and checking datagrams (a keyed BLAKE3 MAC, or
XChaCha20-Poly1305 with ``encrypt``), and the keys and proofs of a keyed TCP connection
(``docs/wire.md``, "Authentication" and "The TCP port"; ``docs/security.md``).

It needs the optional dependencies ``blake3`` and (for encryption) ``PyNaCl``:
``pip install 'dhost[keys]'``. Without them a key is refused with a clear error.
"""

from __future__ import annotations

import hmac
import os
import stat
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import GroupKeyError
from .wire import AUTH_LEN, TAG_LEN, Header

__all__ = ["GroupKey", "Keyring", "load_key_file", "Gate", "FrameKey", "transcript_key"]

_KEY_WORD = "dhost-group-key"
_KEY_FORMAT = "1"
_MAX_KEY_FILE = 64 * 1024

_ID = "dhost 2026-12-02 group key id"
_DATAGRAM_MAC = "dhost 2026-12-02 datagram MAC"
_DATAGRAM_AEAD = "dhost 2026-12-02 datagram AEAD"
_CONNECTION = "dhost 2026-12-02 connection handshake"
SERVER_PROOF = "dhost 2026-12-02 connection server proof"
CLIENT_PROOF = "dhost 2026-12-02 connection client proof"
CLIENT_TO_SERVER = "dhost 2026-12-02 connection client to server"
SERVER_TO_CLIENT = "dhost 2026-12-02 connection server to client"

#: How far a keyed datagram's time may be from this host's clock, in milliseconds.
MAX_CLOCK_SKEW_MS = 60_000


def _blake3() -> Any:
    try:
        import blake3
    except ImportError:
        raise GroupKeyError(
            "group keys need the blake3 package: pip install 'dhost[keys]' (or blake3)"
        ) from None
    return blake3


def _nacl() -> Any:
    try:
        import nacl.bindings
    except ImportError:
        raise GroupKeyError(
            "encryption needs the PyNaCl package: pip install 'dhost[keys]' (or pynacl)"
        ) from None
    return nacl.bindings


def derive_key(context: str, material: bytes) -> bytes:
    """``BLAKE3-derive-key(context, material)``."""
    return bytes(_blake3().blake3(material, derive_key_context=context).digest())


def keyed_hash(key: bytes, *parts: bytes, length: int = TAG_LEN) -> bytes:
    """Keyed BLAKE3 of the parts, cut to ``length`` bytes."""
    hasher = _blake3().blake3(key=key)
    for part in parts:
        hasher.update(part)
    return bytes(hasher.digest(length=length))


@dataclass(frozen=True, repr=False)
class GroupKey:
    """One group key and the keys derived from it."""

    id: bytes
    datagram_mac: bytes
    datagram_aead: bytes
    connection: bytes

    def __repr__(self) -> str:  # never the key itself
        return f"GroupKey({self.id.hex()})"

    @classmethod
    def from_secret(cls, secret: bytes) -> GroupKey:
        """The key whose 32 secret bytes are ``secret``."""
        if len(secret) != 32:
            raise GroupKeyError("a group key is 32 bytes")
        return cls(
            id=derive_key(_ID, secret)[:4],
            datagram_mac=derive_key(_DATAGRAM_MAC, secret),
            datagram_aead=derive_key(_DATAGRAM_AEAD, secret),
            connection=derive_key(_CONNECTION, secret),
        )

    @classmethod
    def from_line(cls, line: str) -> GroupKey:
        """A key from its line in a key file: ``dhost-group-key 1 HEX``."""
        words = line.split()
        if not words or words[0] != _KEY_WORD:
            raise GroupKeyError(f"a key line starts with `{_KEY_WORD}`")
        if len(words) < 2:
            raise GroupKeyError("the key format and the key are missing")
        if words[1] != _KEY_FORMAT:
            raise GroupKeyError(f"key format {words[1]} is not known (this client reads format 1)")
        if len(words) < 3:
            raise GroupKeyError("the key is missing")
        if len(words) > 3:
            raise GroupKeyError("more than the key after the key")
        try:
            secret = bytes.fromhex(words[2])
        except ValueError:
            secret = b""
        if len(secret) != 32:
            raise GroupKeyError("the key is not 64 hexadecimal digits")
        return cls.from_secret(secret)


@dataclass(frozen=True)
class Keyring:
    """The keys of a key file: the first sends, each is accepted (a change-over)."""

    keys: tuple[GroupKey, ...]

    @property
    def sending(self) -> GroupKey:
        """The key to send with."""
        return self.keys[0]

    def by_id(self, key_id: bytes) -> GroupKey | None:
        """The key whose id is ``key_id``."""
        return next((k for k in self.keys if hmac.compare_digest(k.id, key_id)), None)

    @classmethod
    def parse(cls, text: str) -> Keyring:
        """The keys of a key file's text."""
        keys: list[GroupKey] = []
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                key = GroupKey.from_line(line)
            except GroupKeyError as e:
                raise GroupKeyError(f"line {n}: {e}") from None
            if any(k.id == key.id for k in keys):
                raise GroupKeyError(f"line {n}: the same key twice")
            keys.append(key)
        if not keys:
            raise GroupKeyError("no key in the file (make one with `dhost keygen FILE`)")
        if len(keys) > 2:
            raise GroupKeyError(
                f"{len(keys)} keys: a key file holds one key, or two during a change-over"
            )
        return cls(tuple(keys))


def load_key_file(path: str | os.PathLike[str]) -> Keyring:
    """Reads a key file made by ``dhost keygen``; it must be readable by its owner alone."""
    path = Path(path)
    try:
        info = path.stat()
        if info.st_mode & 0o077:
            raise GroupKeyError(
                f"{path} may be read by other users (mode {stat.S_IMODE(info.st_mode):03o}): "
                "a group key must stay secret; chmod 600 it"
            )
        if info.st_size > _MAX_KEY_FILE:
            raise GroupKeyError(f"{path} is too large to be a key file")
        text = path.read_text()
    except OSError as e:
        raise GroupKeyError(f"cannot read the key file {path}: {e}") from None
    try:
        return Keyring.parse(text)
    except GroupKeyError as e:
        raise GroupKeyError(f"bad key file {path}: {e}") from None


def _now_ms() -> int:
    return int(time.time() * 1000)


class Gate:
    """Seals the datagrams a client sends and checks those it receives, with the group's
    keys or without any (then it sends mode 0 and takes only unprotected datagrams)."""

    #: The most senders whose packet numbers are remembered.
    MAX_SENDERS = 4096

    def __init__(self, keys: Keyring | None, encrypt: bool = False) -> None:
        if encrypt and keys is None:
            raise GroupKeyError("encryption needs a group key")
        if keys is not None:
            _blake3()
            if encrypt:
                _nacl()
        self.keys = keys
        self.encrypt = encrypt
        self._packet = 0
        # Per sender: the packet numbers seen (the last 1024 at most), and when.
        self._seen: dict[int, tuple[float, set[int], int]] = {}

    def seal(self, datagram: bytes, header_len: int, sender: int, unicast: bool = False) -> bytes:
        """Numbers, times and tags a datagram whose header (``header_len`` bytes, written
        by :func:`dhost.wire.encode_header` with zeros for packet, time and auth) opens
        it: the bytes to send."""
        self._packet += 1
        packet = self._packet
        head = bytearray(datagram[:header_len])
        body = datagram[header_len:]
        # The header ends with packet (9 bytes), sent-at (9), the auth field (2 + 21).
        tail = header_len - (9 + 9 + 2 + AUTH_LEN)
        head[tail + 1 : tail + 9] = struct.pack(">Q", packet)
        head[tail + 10 : tail + 18] = struct.pack(">Q", _now_ms())
        if self.keys is None:
            head[tail + 20] = 0x80 if unicast else 0
            return bytes(head) + body
        key = self.keys.sending
        head[tail + 20] = (2 if self.encrypt else 1) | (0x80 if unicast else 0)
        head[tail + 21 : tail + 25] = key.id
        covered = bytes(head[:-TAG_LEN])
        if self.encrypt:
            nonce = struct.pack(">QQ", sender, packet) + bytes(8)
            sealed = _nacl().crypto_aead_xchacha20poly1305_ietf_encrypt(
                body, covered, nonce, key.datagram_aead
            )
            body, tag = sealed[:-TAG_LEN], sealed[-TAG_LEN:]
        else:
            tag = keyed_hash(key.datagram_mac, covered, body)
        head[-TAG_LEN:] = tag
        return bytes(head) + body

    def open(self, header: Header, datagram: bytes, unicast: bool = False) -> bytes | str:
        """The frames of a received datagram, or why it is refused (text)."""
        body = datagram[header.length :]
        if self.keys is None:
            if header.protection != 0:
                return "it carries a tag: its sender has a group key and this client has none"
            return body
        if header.protection == 0:
            return "it carries no tag: its sender has no group key"
        key = self.keys.by_id(header.key_id)
        if key is None:
            return f"its tag is made with key {header.key_id.hex()}, which this client does not hold"
        covered = datagram[: header.length - TAG_LEN]
        if header.protection == 1:
            if not hmac.compare_digest(keyed_hash(key.datagram_mac, covered, body), header.tag):
                return "its tag is wrong"
        else:
            nonce = struct.pack(">QQ", header.sender, header.packet) + bytes(8)
            try:
                body = _nacl().crypto_aead_xchacha20poly1305_ietf_decrypt(
                    body + header.tag, covered, nonce, key.datagram_aead
                )
            except Exception:
                return "its tag is wrong"
        if header.unicast != unicast:
            return "it was sent elsewhere (a replay)"
        if abs(_now_ms() - header.sent_at) > MAX_CLOCK_SKEW_MS:
            return "it was sent more than a minute from this host's clock"
        now = time.monotonic()
        seen_at, seen, highest = self._seen.get(header.sender, (now, set(), 0))
        if header.packet in seen or header.packet + 1024 <= highest:
            return f"packet {header.packet} of its sender came before (a replay)"
        seen.add(header.packet)
        highest = max(highest, header.packet)
        if len(seen) > 1024:
            seen = {p for p in seen if p + 1024 > highest}
        self._seen[header.sender] = (now, seen, highest)
        if len(self._seen) > self.MAX_SENDERS:
            oldest = min(self._seen, key=lambda s: self._seen[s][0])
            del self._seen[oldest]
        return body


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
                _nacl().crypto_aead_chacha20poly1305_ietf_encrypt(frame, None, self._nonce(n), self._key)
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
                    _nacl().crypto_aead_chacha20poly1305_ietf_decrypt(
                        sealed, None, self._nonce(n), self._key
                    )
                )
            except Exception:
                raise ValueError(bad) from None
        frame, tag = sealed[:-TAG_LEN], sealed[-TAG_LEN:]
        if not hmac.compare_digest(keyed_hash(self._key, struct.pack(">Q", n), frame), tag):
            raise ValueError(bad)
        return frame
