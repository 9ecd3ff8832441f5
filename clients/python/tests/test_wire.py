"""The wire format, group keys, and hostile input: malformed datagrams, and TCP peers
that lie about lengths, send garbage, or say nothing."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import cbor2
import pytest

import dhost
from conftest import unique_group
from dhost import wire
from dhost.discovery import Group, GroupClient
from dhost.errors import GroupKeyError, ProtocolError
from dhost.keys import Gate, GroupKey, Keyring, load_key_file


def test_a_header_round_trips() -> None:
    head = wire.encode_header(2**64 - 1, 7, 3, 1234)
    header = wire.decode_header(head + b"\x82\x02\x03")
    assert (header.version, header.sender, header.seq, header.packet, header.sent_at) == (4, 2**64 - 1, 7, 3, 1234)
    assert header.length == len(head)
    assert header.protection == 0 and not header.unicast
    control = wire.decode_header(wire.encode_header(1, None, 1, 1))
    assert control.seq is None


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "truncated"),
        (b"\x01", "no header tag"),
        (b"\xd9\xd9\xf7", "truncated"),
        (b"\xd9\xd9\xf7\x86\x03", "wire version 3"),
        (b"\xd9\xd9\xf7\x85\x04", "six fields"),
        (b"\xd9\xd9\xf7\x86\x04\x01\x00", "sequence number of 0"),
        (b"\xd9\xd9\xf7\x86\x04\x01\xf6\x01\x01\x41\x00", "21 bytes"),
        (b"\xd9\xd9\xf7\x86\x04\x01\xf6\x01\x01\x55" + b"\x07" + bytes(20), "protection mode 7"),
    ],
)
def test_bad_headers_are_clear_errors(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        wire.decode_header(data)


def test_frames_are_decoded_and_bounded() -> None:
    announce = cbor2.dumps([1, "ann", 12, ["a:b/c#d"], "127.0.0.1:4000", [["bob", 1]], [], [], []])
    frames = wire.decode_frames(wire.encode_position(1, 1) + announce + cbor2.dumps([99, "new"]))
    assert [f.kind for f in frames] == [6, 1, 99]
    a = frames[1].announce
    assert a is not None and a.name == "ann" and a.tcp == ("127.0.0.1", 4000) and a.links == (("bob", 1),)
    with pytest.raises(ProtocolError):
        wire.decode_frames(b"\x9f\x01")  # an unterminated array
    with pytest.raises(ProtocolError):
        wire.decode_frames(b"\x81" * 1000 + b"\x01")  # nested too deep
    with pytest.raises(ProtocolError, match="name"):
        wire.decode_frames(cbor2.dumps([1, "bad\nname", 1, []]))
    with pytest.raises(ProtocolError, match="TCP address"):
        wire.decode_frames(cbor2.dumps([1, "ann", 1, [], "nowhere"]))


def test_replies_are_decoded() -> None:
    assert wire.decode_reply(cbor2.dumps([5, 1, True, "v"])).value == "v"
    failed = wire.decode_reply(cbor2.dumps([5, 2, False, "timeout", "x" * 10000]))
    assert (failed.kind, len(failed.message)) == ("timeout", 4096)
    for bad in ([4, 1, "f", [], True], [5], [5, 1, False, 3, "m"], "text"):
        with pytest.raises(ProtocolError):
            wire.decode_reply(cbor2.dumps(bad))
    with pytest.raises(ProtocolError, match="trailing"):
        wire.decode_reply(cbor2.dumps([5, 1, True, None]) + b"\x00")


# ---------------------------------------------------------------------------------------
# A fake node's TCP port


@pytest.fixture
def fake_node() -> Iterator[Callable[[Callable[[socket.socket], None]], str]]:
    """Serves one connection with ``behave(conn)``; returns the address."""
    servers: list[socket.socket] = []

    def serve(behave: Callable[[socket.socket], None]) -> str:
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        servers.append(server)

        def run() -> None:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                try:
                    behave(conn)
                except OSError:
                    pass

        threading.Thread(target=run, daemon=True).start()
        return "127.0.0.1:%d" % server.getsockname()[1]

    yield serve
    for s in servers:
        s.close()


def _read_request(conn: socket.socket) -> list:  # type: ignore[type-arg]
    """Reads the magic (and answers it, as a node does), the hello and a request."""
    assert conn.recv(4) == wire.MAGIC
    conn.sendall(wire.MAGIC)
    out = []
    buf = b""
    while len(out) < 2:  # the hello, then the request
        while len(buf) < 4 or len(buf) < 4 + struct.unpack(">I", buf[:4])[0]:
            buf += conn.recv(65536)
        n = struct.unpack(">I", buf[:4])[0]
        out.append(cbor2.loads(buf[4 : 4 + n]))
        buf = buf[4 + n :]
    return out


def _call(address: str, timeout: float = 1.0) -> object:
    with dhost.connect(address=address, timeout=timeout) as c:
        return c.call(None, "a:b/c#d", 1)


def test_a_well_behaved_fake_node(fake_node) -> None:
    seen = []

    def behave(conn: socket.socket) -> None:
        hello, request = _read_request(conn)
        seen.extend([hello, request])
        # A stale reply first (another id), then the one asked for.
        for frame in ([5, 999, True, "stale"], [5, request[1], True, [1, "two"]]):
            data = cbor2.dumps(frame)
            conn.sendall(struct.pack(">I", len(data)) + data)
        time.sleep(0.5)

    assert _call(fake_node(behave)) == [1, "two"]
    hello, request = seen
    assert hello[0] == 8 and hello[2] is None
    assert request[0] == 4 and request[2:] == ["a:b/c#d", [1], True]


def test_a_failed_reply_is_the_exception_of_its_kind(fake_node) -> None:
    def behave(conn: socket.socket) -> None:
        _, request = _read_request(conn)
        data = cbor2.dumps([5, request[1], False, "unavailable", "busy, come back later"])
        conn.sendall(struct.pack(">I", len(data)) + data)
        time.sleep(0.5)

    with pytest.raises(dhost.Unavailable, match="^busy, come back later$"):
        _call(fake_node(behave))


def test_a_frame_over_the_limit_is_refused_before_it_is_read(fake_node) -> None:
    def behave(conn: socket.socket) -> None:
        _read_request(conn)
        conn.sendall(struct.pack(">I", 64 * 1024 * 1024))
        time.sleep(1)

    start = time.monotonic()
    with pytest.raises(ProtocolError, match="frames are at most 1048576"):
        _call(fake_node(behave), timeout=5.0)
    assert time.monotonic() - start < 2


def test_garbage_frames_are_protocol_errors(fake_node) -> None:
    def behave(conn: socket.socket) -> None:
        _read_request(conn)
        conn.sendall(struct.pack(">I", 3) + b"\xff\xff\xff")
        time.sleep(1)

    with pytest.raises(ProtocolError, match="malformed"):
        _call(fake_node(behave))


def test_a_silent_node_times_out(fake_node) -> None:
    def behave(conn: socket.socket) -> None:
        _read_request(conn)
        time.sleep(2)

    start = time.monotonic()
    with pytest.raises(dhost.Timeout, match="no reply"):
        _call(fake_node(behave), timeout=0.3)
    assert time.monotonic() - start < 1.5


def test_a_node_that_sends_a_frame_a_byte_at_a_time_times_out(fake_node) -> None:
    def behave(conn: socket.socket) -> None:
        _read_request(conn)
        conn.sendall(struct.pack(">I", 100))
        for _ in range(100):
            conn.sendall(b"\x00")
            time.sleep(0.05)

    start = time.monotonic()
    with pytest.raises(dhost.Timeout):
        _call(fake_node(behave), timeout=0.5)
    assert time.monotonic() - start < 1.5


def test_no_magic_is_not_a_node(fake_node) -> None:
    def behave(conn: socket.socket) -> None:
        conn.recv(100)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        time.sleep(0.5)

    with pytest.raises(dhost.PeerGone, match="not a dhost node"):
        _call(fake_node(behave))


def test_a_magic_that_never_comes_is_bounded(fake_node) -> None:
    def behave(conn: socket.socket) -> None:
        time.sleep(2)

    start = time.monotonic()
    with pytest.raises(dhost.PeerGone, match="did not arrive in time"):
        _call(fake_node(behave), timeout=0.3)
    assert time.monotonic() - start < 1.5


def test_a_closed_connection_is_peer_gone(fake_node) -> None:
    def behave(conn: socket.socket) -> None:
        _read_request(conn)

    with pytest.raises(dhost.PeerGone, match="closed the connection"):
        _call(fake_node(behave))


def test_nobody_listening_is_peer_gone() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(dhost.PeerGone, match="cannot connect"):
        _call(f"127.0.0.1:{port}")


def test_a_request_over_a_frame_is_refused_before_sending(fake_node) -> None:
    address = fake_node(lambda conn: time.sleep(0.5))
    with dhost.connect(address=address) as c:
        with pytest.raises(dhost.BadArguments, match="more than a frame carries"):
            c.call(None, "a:b/c#d", b"x" * (2 * 1024 * 1024))


# ---------------------------------------------------------------------------------------
# The group


def _fake_announcement(sender: int, name: str, functions: list[str]) -> bytes:
    header = wire.encode_header(sender, None, 1, int(time.time() * 1000))
    return header + cbor2.dumps([1, name, 5, functions, "127.0.0.1:9", [], [], [], []])


def test_a_survey_skips_garbage_and_reads_announcements() -> None:
    address = unique_group()
    client = GroupClient(Group(address=dhost.discovery.parse_group(address), ttl=0))
    sender = Group(address=dhost.discovery.parse_group(address), ttl=0).sender()
    stop = threading.Event()

    def noise() -> None:
        while not stop.is_set():
            for datagram in (
                b"garbage",
                b"\xd9\xd9\xf7\x86\x04" + b"\xff" * 50,
                wire.encode_header(5, None, 1, 1) + b"\x9f\x01",  # cut short
                _fake_announcement(6, "fake", ["x:y/z#w"]),
            ):
                sender.sendto(datagram, client.group.address)
            time.sleep(0.02)

    thread = threading.Thread(target=noise, daemon=True)
    thread.start()
    try:
        peers = client.survey(0.3)
    finally:
        stop.set()
        thread.join()
        sender.close()
        client.close()
    assert [(p.name, p.id, p.tcp, p.functions) for p in peers] == [
        ("fake", 6, ("127.0.0.1", 9), ("x:y/z#w",))
    ]


def test_a_datagram_too_large_is_refused() -> None:
    address = unique_group()
    with dhost.connect(address, ttl=0, wait=0.05) as c:
        client = c._group
        assert client is not None
        with pytest.raises(dhost.BadArguments, match="one datagram carries"):
            client.cast("a:b/c#d", [b"x" * 70000])


def test_bad_groups_are_refused() -> None:
    for bad in ("10.0.0.1:4723", "239.0.0.1", "nowhere:1", "239.0.0.1:0"):
        with pytest.raises(dhost.DhostError):
            dhost.connect(bad)


# ---------------------------------------------------------------------------------------
# Keys


SECRET = bytes(range(32))


def _key_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "key"
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_key_files_are_read_strictly(tmp_path: Path) -> None:
    pytest.importorskip("blake3")
    line = f"dhost-group-key 1 {SECRET.hex()}"
    ring = load_key_file(_key_file(tmp_path, f"# a comment\n{line}\n"))
    assert ring.sending == GroupKey.from_secret(SECRET)
    assert len(ring.sending.id) == 4
    assert "GroupKey(" in repr(ring.sending) and SECRET.hex() not in repr(ring.sending)
    with pytest.raises(GroupKeyError, match="read by other users"):
        load_key_file(_key_file(tmp_path, line, 0o644))
    for text, message in [
        ("", "no key"),
        ("dhost-group-key 2 00", "format 2"),
        ("other 1 00", "starts with"),
        ("dhost-group-key 1 abcd", "64 hexadecimal"),
        (f"{line}\n{line}", "the same key twice"),
    ]:
        with pytest.raises(GroupKeyError, match=message):
            load_key_file(_key_file(tmp_path, text))


@pytest.mark.parametrize("encrypt", [False, True])
def test_sealed_datagrams_open_once_with_the_key_alone(encrypt: bool) -> None:
    pytest.importorskip("blake3")
    if encrypt:
        pytest.importorskip("nacl")
    ring = Keyring((GroupKey.from_secret(SECRET),))
    sender, receiver = Gate(ring, encrypt), Gate(ring, encrypt)
    frames = wire.encode_query()
    head = wire.encode_header(42, None, 0, 0)
    sealed = sender.seal(head + frames, len(head), 42)
    header = wire.decode_header(sealed)
    assert header.protection == (2 if encrypt else 1) and header.key_id == ring.sending.id
    assert (sealed[len(head) :] == frames) != encrypt
    assert receiver.open(header, sealed) == frames
    assert "replay" in receiver.open(header, sealed)  # type: ignore[operator]
    # Every byte counts.
    for at in (len(head) - 17, len(head) - 1, len(sealed) - 1):
        altered = bytearray(sealed)
        altered[at] ^= 1
        fresh = Gate(ring, encrypt)
        assert isinstance(fresh.open(wire.decode_header(bytes(altered)), bytes(altered)), str)
    other = Keyring((GroupKey.from_secret(bytes(32)),))
    assert "does not hold" in Gate(other).open(header, sealed)  # type: ignore[operator]
    assert "carries a tag" in Gate(None).open(header, sealed)  # type: ignore[operator]
    plain = wire.encode_header(1, None, 1, 1) + frames
    assert "no tag" in receiver.open(wire.decode_header(plain), plain)  # type: ignore[operator]
