"""The bytes dhost nodes exchange, read and written: the datagrams of the multicast group
(their header and the frames this client sends or reads) and the frames of a node's TCP
port. ``docs/wire.md`` of the dhost repository is the reference.

Every byte from the network is hostile: decoding never trusts a length beyond the bytes at
hand (a datagram, or a TCP frame of at most :data:`MAX_FRAME` bytes), CBOR nesting is
bounded by the decoder (:data:`MAX_NESTING`), CBOR tags are refused (the protocol uses
none inside frames: the datagram header's tag 55799 is read by hand, and the TCP magic
before any CBOR), and every malformed input raises :class:`~dhost.errors.ProtocolError`
saying what was wrong.
"""

from __future__ import annotations

import io
import ipaddress
import struct
from dataclasses import dataclass, field
from typing import Any, Sequence

import cbor2

from .errors import ProtocolError

__all__ = [
    "VERSION",
    "MAGIC_TAG",
    "MAGIC",
    "MAGIC_KEYED",
    "MAX_FRAME",
    "MAX_DATAGRAM",
    "MAX_MESSAGE",
    "AUTH_LEN",
    "TAG_LEN",
    "Header",
    "Announcement",
    "Reply",
    "encode_header",
    "decode_header",
    "decode_frames",
    "encode_query",
    "encode_call",
    "encode_position",
    "encode_hello",
    "encode_request",
    "decode_reply",
    "decode_item",
    "NUMBERS_BELOW",
    "MAX_NESTING",
]

#: The wire version of datagrams.
VERSION = 4
#: The CBOR "self-described CBOR" tag that opens every datagram's header.
MAGIC_TAG = 55799
#: What both ends of an unkeyed TCP connection send first.
MAGIC = bytes([0xD9, 0xD9, 0xF7, 0x01])
#: What both ends of a keyed TCP connection send first.
MAGIC_KEYED = bytes([0xD9, 0xD9, 0xF7, 0x02])
#: The largest TCP frame (the CBOR after the 4-byte length).
MAX_FRAME = 1024 * 1024
#: The largest UDP payload over IPv4.
MAX_DATAGRAM = 65_507
#: The longest node name.
MAX_NAME = 255
#: The longest error message a reply carries (longer ones are cut).
MAX_MESSAGE = 4096
#: The length of a tag.
TAG_LEN = 16
#: The length of a header's ``auth`` field: the mode, the key id, the tag.
AUTH_LEN = 1 + 4 + TAG_LEN
#: Datagram and call numbers are below this.
NUMBERS_BELOW = 1 << 63
#: The deepest nesting of arrays and maps a CBOR item from the network may have.
MAX_NESTING = 128

_KIND_CALL = 0
_KIND_ANNOUNCE = 1
_KIND_QUERY = 2
_KIND_GOODBYE = 3
_KIND_REQUEST = 4
_KIND_REPLY = 5
_KIND_POSITION = 6
_KIND_HELLO = 8

# ---------------------------------------------------------------------------------------
# CBOR items


class _TagRefused(Exception):
    pass


def _refuse_tag(*_: Any) -> Any:
    # Tags carry no part of the protocol, and cbor2's decoders of some are hazards: shared
    # values (28/29) build cycles, bignums (2/3) overflow floats, 35 compiles a regex.
    raise _TagRefused("a CBOR tag (the protocol uses none)")


# Every tag cbor2 decodes itself (its "semantic" tags), taken over by the refusal; the
# others reach the tag hook, which refuses them too.
_NO_TAGS: dict[int, Any] = dict.fromkeys(
    (0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258, 260, 261, 1004,
     43000, 55799),
    _refuse_tag,
)


def _decoder(stream: io.BytesIO) -> cbor2.CBORDecoder:
    """A decoder of network input: no tags, nesting bounded."""
    return cbor2.CBORDecoder(
        stream, tag_hook=_refuse_tag, semantic_decoders=_NO_TAGS, max_depth=MAX_NESTING
    )


try:
    _decoder(io.BytesIO(b""))
except TypeError:  # pragma: no cover - an old cbor2
    raise ImportError(
        "dhost needs cbor2 6.3 or later (its decoder must take semantic_decoders): "
        "pip install -U cbor2"
    ) from None


def _malformed(what: str, e: BaseException) -> ProtocolError:
    cause = e
    while cause.__cause__ is not None and not isinstance(cause, _TagRefused):
        cause = cause.__cause__
    if isinstance(cause, _TagRefused):
        return ProtocolError(f"malformed CBOR in {what}: {cause}")
    return ProtocolError(f"malformed CBOR in {what}: {e}")


def decode_item(data: bytes, what: str) -> Any:
    """Decodes ``data`` as exactly one CBOR item (no trailing bytes, no tags)."""
    stream = io.BytesIO(data)
    try:
        item = _decoder(stream).decode()
    except Exception as e:  # cbor2 raises several kinds; every one is malformed input
        raise _malformed(what, e) from None
    if stream.tell() != len(data):
        raise ProtocolError(f"malformed {what}: trailing bytes after the item")
    return item


def _items(data: bytes, what: str) -> list[Any]:
    """Decodes ``data`` as a CBOR sequence: items back to back (no tags)."""
    stream = io.BytesIO(data)
    decoder = _decoder(stream)
    out = []
    while stream.tell() < len(data):
        try:
            out.append(decoder.decode())
        except Exception as e:
            raise _malformed(what, e) from None
    return out


def _uint_head(n: int) -> bytes:
    """A CBOR unsigned integer in 9 bytes (head ``1b``), as nodes write header fields."""
    return b"\x1b" + struct.pack(">Q", n)


# ---------------------------------------------------------------------------------------
# Datagrams


@dataclass(frozen=True)
class Header:
    """The header that opens every datagram."""

    version: int
    sender: int
    seq: int | None
    packet: int
    sent_at: int
    mode: int
    key_id: bytes
    tag: bytes
    #: Where the frames (or their ciphertext) start; the tag is the 16 bytes before.
    length: int

    @property
    def protection(self) -> int:
        """0: none, 1: a MAC, 2: encrypted."""
        return self.mode & 0x7F

    @property
    def unicast(self) -> bool:
        """Whether it was sent to one node rather than to the group."""
        return bool(self.mode & 0x80)


def encode_header(
    sender: int, seq: int | None, packet: int, sent_at: int, auth: bytes = bytes(AUTH_LEN)
) -> bytes:
    """The header of a datagram from ``sender``: sequenced with number ``seq``, or a
    control datagram (``seq`` None). Integers take 9 bytes each, as a node writes them."""
    if len(auth) != AUTH_LEN:
        raise ValueError("the auth field is 21 bytes")
    out = bytearray(b"\xd9\xd9\xf7\x86\x04")
    out += _uint_head(sender)
    out += _uint_head(seq) if seq is not None else b"\xf6"
    out += _uint_head(packet)
    out += _uint_head(sent_at)
    out += bytes([0x58, AUTH_LEN]) + auth
    return bytes(out)


class _Reader:
    """Reads CBOR heads from bytes, never past their end."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ProtocolError("bad header: truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def head(self) -> tuple[int, int | None]:
        """The next head: (major type, argument), the argument None for indefinite
        length or a simple value's low bits in the major type 7 case."""
        initial = self.take(1)[0]
        major, info = initial >> 5, initial & 0x1F
        if info < 24:
            return major, info
        if info in (24, 25, 26, 27):
            size = 1 << (info - 24)
            return major, int.from_bytes(self.take(size), "big")
        if info == 31:
            return major, None
        raise ProtocolError(f"bad header: reserved additional information {info}")

    def uint(self, what: str) -> int:
        major, arg = self.head()
        if major != 0 or arg is None:
            raise ProtocolError(f"bad header: no {what}")
        return arg


def decode_header(datagram: bytes) -> Header:
    """Reads the header that opens ``datagram``."""
    r = _Reader(datagram)
    major, arg = r.head()
    if major != 6 or arg != MAGIC_TAG:
        raise ProtocolError(f"not a dhost datagram (no header tag {MAGIC_TAG})")
    major, length = r.head()
    if major != 4:
        raise ProtocolError("bad header: not an array")
    version = r.uint("version")
    if version != VERSION:
        raise ProtocolError(f"wire version {version} is not supported (this client speaks {VERSION})")
    if length != 6:
        raise ProtocolError("bad header: not an array of six fields")
    sender = r.uint("sender id")
    major, arg = r.head()
    if major == 0 and arg is not None:
        if arg == 0 or arg >= NUMBERS_BELOW:
            raise ProtocolError("bad header: a sequence number of 0, or of 2^63 or more")
        seq: int | None = arg
    elif major == 7 and arg == 22:
        seq = None
    else:
        raise ProtocolError("bad header: the sequence number is neither a number nor null")
    packet = r.uint("packet number")
    sent_at = r.uint("time of sending")
    major, arg = r.head()
    if major != 2 or arg != AUTH_LEN:
        raise ProtocolError("bad header: the auth field is not a byte string of 21 bytes")
    auth = r.take(AUTH_LEN)
    if auth[0] & 0x7F not in (0, 1, 2):
        raise ProtocolError(f"bad header: protection mode {auth[0] & 0x7F}")
    return Header(
        version=version,
        sender=sender,
        seq=seq,
        packet=packet,
        sent_at=sent_at,
        mode=auth[0],
        key_id=bytes(auth[1:5]),
        tag=bytes(auth[5:]),
        length=r.pos,
    )


@dataclass(frozen=True)
class Announcement:
    """What a node says of itself on the group (a frame of kind 1)."""

    #: The node's name, unique on the group.
    name: str
    #: How long it has been up, in milliseconds.
    uptime_ms: int
    #: The function ids its guests serve.
    functions: tuple[str, ...]
    #: Its TCP port as ``(host, port)``, or None when it takes no calls with replies.
    tcp: tuple[str, int] | None
    #: The peers it holds connections to, by name, with how many.
    links: tuple[tuple[str, int], ...] = ()
    #: The fields this client does not read (streams, refusals, publications).
    extra: tuple[Any, ...] = field(default=(), repr=False)


def _parse_addr(text: str) -> tuple[str, int]:
    """``"127.0.0.1:40935"`` or ``"[::1]:40935"`` as (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ProtocolError(f"bad announce: the TCP address {text!r} is not an address and port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ProtocolError(f"bad announce: {host!r} is not an IP address") from None
    number = int(port)
    # (Port 0 is a node reached through Zenoh, which goes by an address of 100::/64.)
    zenoh = number == 0 and host.lower().startswith("100::")
    if not (0 < number < 65536 or zenoh):
        raise ProtocolError(f"bad announce: port {number} is out of range")
    return host, number


def _decode_announce(fields: Sequence[Any]) -> Announcement:
    if len(fields) < 3:
        raise ProtocolError("bad announce: fewer than 3 fields")
    name, uptime, functions = fields[0], fields[1], fields[2]
    if (
        not isinstance(name, str)
        or not name
        or len(name.encode()) > MAX_NAME
        or any(not c.isprintable() for c in name)
    ):
        raise ProtocolError("bad announce: the name is empty, too long or not printable")
    if not _is_uint(uptime):
        raise ProtocolError("bad announce: no uptime")
    if not isinstance(functions, (list, tuple)) or not all(isinstance(f, str) for f in functions):
        raise ProtocolError("bad announce: no function list")
    tcp = None
    if len(fields) > 3 and fields[3] is not None:
        if not isinstance(fields[3], str):
            raise ProtocolError("bad announce: the TCP address is not text")
        tcp = _parse_addr(fields[3])
    links: list[tuple[str, int]] = []
    if len(fields) > 4 and isinstance(fields[4], (list, tuple)):
        for link in fields[4]:
            if (
                isinstance(link, (list, tuple))
                and len(link) == 2
                and isinstance(link[0], str)
                and _is_uint(link[1])
            ):
                links.append((link[0], link[1]))
    return Announcement(
        name=name,
        uptime_ms=uptime,
        functions=tuple(functions),
        tcp=tcp,
        links=tuple(links),
        extra=tuple(fields[5:]),
    )


def _is_uint(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 64


@dataclass(frozen=True)
class Frame:
    """A frame of a datagram: its kind, and for an announcement what it says."""

    kind: int
    announce: Announcement | None = None
    fields: tuple[Any, ...] = ()


def decode_frames(body: bytes) -> list[Frame]:
    """The frames of a datagram, after its header. Frames of kinds this client does not
    read are returned with their fields unread."""
    frames = []
    for item in _items(body, "a datagram"):
        if not isinstance(item, (list, tuple)) or not item or not _is_uint(item[0]):
            raise ProtocolError("bad frame: not an array opening with its kind")
        kind = item[0]
        if kind == _KIND_ANNOUNCE:
            frames.append(Frame(kind, announce=_decode_announce(item[1:])))
        else:
            frames.append(Frame(kind, fields=tuple(item[1:])))
    return frames


def encode_query() -> bytes:
    """A query frame: every node should announce itself now."""
    return cbor2.dumps([_KIND_QUERY])


def encode_position(next_seq: int, oldest: int) -> bytes:
    """A position frame: the sender sent its stream up to ``next_seq - 1`` and can resend
    from ``oldest`` on."""
    return cbor2.dumps([_KIND_POSITION, next_seq, oldest])


def encode_call(first: int, function: str, args: Sequence[Any]) -> bytes:
    """A call frame of one call (call number ``first``) to ``function``."""
    return cbor2.dumps([_KIND_CALL, first, function, list(args)])


def encode_goodbye() -> bytes:
    """A goodbye frame."""
    return cbor2.dumps([_KIND_GOODBYE])


# ---------------------------------------------------------------------------------------
# TCP frames


def encode_hello(node_id: int, name: str | None) -> bytes:
    """The hello a connection opens with: the caller's id and name (None for a client)."""
    return cbor2.dumps([_KIND_HELLO, node_id, name])


def encode_request(request_id: int, function: str, args: Sequence[Any], wants_reply: bool) -> bytes:
    """A request: run ``function`` on the node, with a reply or not (a cast)."""
    return cbor2.dumps([_KIND_REQUEST, request_id, function, list(args), wants_reply])


@dataclass(frozen=True)
class Reply:
    """A reply frame: request ``id`` ran (``ok``, with ``value``) or failed (``kind`` and
    ``message``)."""

    id: int
    ok: bool
    value: Any = None
    kind: str = ""
    message: str = ""


def decode_reply(data: bytes) -> Reply:
    """Decodes a frame the node sent on its TCP port; only replies are expected."""
    item = decode_item(data, "a frame")
    if not isinstance(item, (list, tuple)) or not item or not _is_uint(item[0]):
        raise ProtocolError("a malformed frame: not an array opening with its kind")
    if item[0] != _KIND_REPLY:
        raise ProtocolError(f"a malformed frame: kind {item[0]} where replies were expected")
    if len(item) < 3 or not _is_uint(item[1]) or not isinstance(item[2], bool):
        raise ProtocolError("a malformed reply: no id or no success flag")
    if item[2]:
        return Reply(id=item[1], ok=True, value=item[3] if len(item) > 3 else None)
    if len(item) < 5 or not isinstance(item[3], str) or not isinstance(item[4], str):
        raise ProtocolError("a malformed reply: no error kind or message")
    return Reply(id=item[1], ok=False, kind=item[3][:64], message=item[4][:MAX_MESSAGE])
