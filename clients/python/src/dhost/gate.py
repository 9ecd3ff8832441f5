"""The datagram gate of a client: with the group's keys it numbers, times and tags (keyed
BLAKE3) or encrypts (XChaCha20-Poly1305) every datagram it sends, and checks those it
receives (key, tag, clock, replays); without a key it sends unprotected datagrams and takes
only those (``docs/wire.md``, "Authentication"; ``docs/security.md``).
"""

from __future__ import annotations

import hmac
import struct
import time

from .errors import GroupKeyError
from .keys import Keyring, blake3_module, keyed_hash, nacl_bindings
from .wire import AUTH_LEN, TAG_LEN, Header

__all__ = ["Gate", "MAX_CLOCK_SKEW_MS"]

#: How far a keyed datagram's time may be from this host's clock, in milliseconds.
MAX_CLOCK_SKEW_MS = 60_000


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
            blake3_module()
            if encrypt:
                nacl_bindings()
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
            sealed = nacl_bindings().crypto_aead_xchacha20poly1305_ietf_encrypt(
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
                body = nacl_bindings().crypto_aead_xchacha20poly1305_ietf_decrypt(
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
