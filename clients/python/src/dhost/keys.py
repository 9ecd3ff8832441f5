"""Group keys (``dhost keygen``, ``--key-file``): reading a key file into a
:class:`Keyring`, the keys derived from each key, and the primitives (BLAKE3 derivation and
keyed hashing) that :mod:`dhost.gate` (sealing and checking datagrams) and
:mod:`dhost.framekeys` (the keys and proofs of a keyed TCP connection) build on
(``docs/wire.md``, "Authentication" and "The TCP port"; ``docs/security.md``).

It needs the optional dependencies ``blake3`` and (for encryption) ``PyNaCl``:
``pip install 'dhost[keys]'``. Without them a key is refused with a clear error.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import stat
import struct
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .errors import GroupKeyError
from .wire import TAG_LEN

__all__ = ["GroupKey", "Keyring", "load_key_file", "derive_key", "keyed_hash"]

_KEY_WORD = "dhost-group-key"
_KEY_FORMAT = "1"
_MAX_KEY_FILE = 64 * 1024

_ID = "dhost 2026-12-02 group key id"
_DATAGRAM_MAC = "dhost 2026-12-02 datagram MAC"
_DATAGRAM_AEAD = "dhost 2026-12-02 datagram AEAD"
_CONNECTION = "dhost 2026-12-02 connection handshake"


def blake3_module() -> Any:
    try:
        import blake3
    except ImportError:
        raise GroupKeyError(
            "group keys need the blake3 package: pip install 'dhost[keys]' (or blake3)"
        ) from None
    return blake3


def nacl_bindings() -> Any:
    try:
        import nacl.bindings
    except ImportError:
        raise GroupKeyError(
            "encryption needs the PyNaCl package: pip install 'dhost[keys]' (or pynacl)"
        ) from None
    return nacl.bindings


def derive_key(context: str, material: bytes) -> bytes:
    """``BLAKE3-derive-key(context, material)``."""
    return bytes(blake3_module().blake3(material, derive_key_context=context).digest())


def keyed_hash(key: bytes, *parts: bytes, length: int = TAG_LEN) -> bytes:
    """Keyed BLAKE3 of the parts, cut to ``length`` bytes."""
    hasher = blake3_module().blake3(key=key)
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
    secret: bytes

    def __repr__(self) -> str:  # never the key itself
        return f"GroupKey({self.id.hex()})"

    def for_group(self, host: str, port: int) -> GroupKey:
        """The key with its datagram keys bound to the group ``host:port``, as the nodes
        bind theirs: a datagram made for one group is good in no other."""
        material = self.secret + ipaddress.IPv4Address(host).packed + struct.pack(">H", port)
        return replace(
            self,
            datagram_mac=derive_key(_DATAGRAM_MAC, material),
            datagram_aead=derive_key(_DATAGRAM_AEAD, material),
        )

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
            secret=secret,
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

    def for_group(self, host: str, port: int) -> Keyring:
        """The keys with their datagram keys bound to the group ``host:port``."""
        return Keyring(tuple(k.for_group(host, port) for k in self.keys))

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


def __getattr__(name: str) -> Any:
    # What this module held before the datagram gate and the connection keys had modules
    # of their own.
    if name == "Gate":
        from .gate import Gate

        return Gate
    if name in ("FrameKey", "transcript_key"):
        from . import framekeys

        return getattr(framekeys, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
