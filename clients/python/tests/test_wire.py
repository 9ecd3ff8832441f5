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
from dhost.gate import Gate
from dhost.keys import GroupKey, Keyring, load_key_file


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
    with dhost.connect(address=address, iface="127.0.0.1", timeout=timeout) as c:
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
        time.sleep(10)

    start = time.monotonic()
    with pytest.raises(ProtocolError, match="frames are at most 1048576"):
        _call(fake_node(behave), timeout=8.0)
    assert time.monotonic() - start < 5


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
        time.sleep(10)

    start = time.monotonic()
    with pytest.raises(dhost.Timeout, match="no reply"):
        _call(fake_node(behave), timeout=0.3)
    assert time.monotonic() - start < 5


def test_a_node_that_sends_a_frame_a_byte_at_a_time_times_out(fake_node) -> None:
    def behave(conn: socket.socket) -> None:
        _read_request(conn)
        conn.sendall(struct.pack(">I", 100))
        for _ in range(100):
            conn.sendall(b"\x00")
            time.sleep(0.1)

    start = time.monotonic()
    with pytest.raises(dhost.Timeout):
        _call(fake_node(behave), timeout=0.5)
    assert time.monotonic() - start < 5


def test_no_magic_is_not_a_node(fake_node) -> None:
    def behave(conn: socket.socket) -> None:
        conn.recv(100)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        time.sleep(0.5)

    with pytest.raises(dhost.PeerGone, match="not a dhost node"):
        _call(fake_node(behave))


def test_a_magic_that_never_comes_is_bounded(fake_node) -> None:
    def behave(conn: socket.socket) -> None:
        time.sleep(10)

    start = time.monotonic()
    with pytest.raises(dhost.PeerGone, match="did not arrive in time"):
        _call(fake_node(behave), timeout=0.3)
    assert time.monotonic() - start < 5


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
    with dhost.connect(address=address, iface="127.0.0.1") as c:
        with pytest.raises(dhost.BadArguments, match="more than a frame carries"):
            c.call(None, "a:b/c#d", b"x" * (2 * 1024 * 1024))


# ---------------------------------------------------------------------------------------
# The group


def _fake_announcement(sender: int, name: str, functions: list[str]) -> bytes:
    header = wire.encode_header(sender, None, 1, int(time.time() * 1000))
    return header + cbor2.dumps([1, name, 5, functions, "127.0.0.1:9", [], [], [], []])


def test_a_survey_skips_garbage_and_reads_announcements() -> None:
    address = unique_group()
    where = Group(address=dhost.discovery.parse_group(address), iface="127.0.0.1", ttl=0)
    client = GroupClient(where)
    sender = where.sender()
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


def test_a_survey_keeps_a_bounded_number_of_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dhost.discovery, "MAX_ANSWERS", 5)
    address = unique_group()
    where = Group(address=dhost.discovery.parse_group(address), iface="127.0.0.1", ttl=0)
    client = GroupClient(where)
    sender = where.sender()
    stop = threading.Event()

    def flood() -> None:
        while not stop.is_set():
            for n in range(20):
                sender.sendto(_fake_announcement(100 + n, f"n{n}", []), client.group.address)
            time.sleep(0.02)

    thread = threading.Thread(target=flood, daemon=True)
    thread.start()
    try:
        peers = client.survey(0.3)
    finally:
        stop.set()
        thread.join()
        sender.close()
        client.close()
    assert len(peers) == 5, peers
    assert client.left_out > 0


def test_a_datagram_too_large_is_refused() -> None:
    address = unique_group()
    with dhost.connect(address, iface="127.0.0.1", ttl=0, wait=0.05) as c:
        client = c._group
        assert client is not None
        with pytest.raises(dhost.BadArguments, match="one datagram carries"):
            client.cast("a:b/c#d", [b"x" * 70000])


def test_bad_groups_are_refused() -> None:
    for bad in ("10.0.0.1:4723", "239.0.0.1", "nowhere:1", "239.0.0.1:0"):
        with pytest.raises(dhost.DhostError):
            dhost.connect(bad, iface="127.0.0.1")


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


def test_datagram_keys_are_bound_to_the_group_as_the_nodes_bind_theirs() -> None:
    pytest.importorskip("blake3")
    key = GroupKey.from_secret(bytes([1] * 32))
    bound = key.for_group("239.0.0.1", 4723)
    # The same vector as protocol/src/auth/key.rs's test.
    assert bound.datagram_mac[:8].hex() == "d9c84980f416f145"
    for other in (key, key.for_group("239.0.0.1", 4724), key.for_group("239.0.0.2", 4723)):
        assert other.datagram_mac != bound.datagram_mac
        assert other.datagram_aead != bound.datagram_aead
    assert bound.id == key.id and bound.connection == key.connection
    ring = Keyring((key,)).for_group("239.0.0.1", 4723)
    assert ring.sending == bound


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


# ---------------------------------------------------------------------------------------
# CBOR tags from the network


@pytest.mark.parametrize(
    "value_hex, what",
    [
        ("d81c81d81d00", "a shared value that contains itself (28/29: a cycle)"),
        ("c259012c" + "ff" * 300, "a bignum (2) of 300 bytes"),
        ("d8236461282b29", "a regex (35)"),
        ("d9d9f701", "self-described CBOR (55799) inside a frame"),
        ("da0001869f00", "an unknown tag"),
        ("c11a5f5e1000", "an epoch time (1)"),
    ],
)
def test_tags_from_the_network_are_refused(value_hex: str, what: str) -> None:
    value = bytes.fromhex(value_hex)
    reply = b"\x84\x05\x01\xf5" + value  # [5, 1, true, VALUE]
    with pytest.raises(ProtocolError, match="a CBOR tag"):
        wire.decode_reply(reply)
    frame = b"\x82\x63abc" + value  # ["abc", VALUE]: the tag is refused before the shape
    with pytest.raises(ProtocolError):
        wire.decode_frames(frame)
    announce = b"\x85\x01\x63ann\x05\x80" + value  # an announcement whose address is tagged
    with pytest.raises(ProtocolError, match="a CBOR tag"):
        wire.decode_frames(announce)
    with pytest.raises(ProtocolError, match="a CBOR tag"):
        wire.decode_item(value, what)


def test_a_reply_with_a_tag_is_a_protocol_error(fake_node) -> None:
    def behave(conn: socket.socket) -> None:
        _, request = _read_request(conn)
        # [5, id, true, 2(h'ff...')]: a bignum of 300 bytes where a value is expected.
        data = b"\x84\x05" + cbor2.dumps(request[1]) + b"\xf5" + bytes.fromhex("c259012c" + "ff" * 300)
        conn.sendall(struct.pack(">I", len(data)) + data)
        time.sleep(0.5)

    with pytest.raises(ProtocolError, match="a CBOR tag"):
        _call(fake_node(behave))


def test_nesting_from_the_network_is_bounded() -> None:
    deep = b"\x81" * (wire.MAX_NESTING + 5) + b"\x01"
    with pytest.raises(ProtocolError):
        wire.decode_item(deep, "a frame")
    fine = b"\x81" * (wire.MAX_NESTING - 5) + b"\x01"
    assert dhost.values.from_plain(wire.decode_item(fine, "a frame")) is not None


# ---------------------------------------------------------------------------------------
# Connections: a stalled keyed handshake, a connection the node closed, idling


def _keyring(tmp_path: Path) -> Path:
    return _key_file(tmp_path, f"dhost-group-key 1 {SECRET.hex()}\n")


def test_a_keyed_handshake_that_stalls_is_peer_gone(fake_node, tmp_path: Path) -> None:
    pytest.importorskip("blake3")

    def behave(conn: socket.socket) -> None:
        assert conn.recv(4) == wire.MAGIC_KEYED
        conn.sendall(wire.MAGIC_KEYED)  # the magic, then no answer to the challenge
        time.sleep(10)

    address = fake_node(behave)
    start = time.monotonic()
    with dhost.connect(address=address, iface="127.0.0.1", key_file=_keyring(tmp_path), timeout=0.5) as c:
        with pytest.raises(dhost.PeerGone, match="the handshake did not arrive in time") as e:
            c.call(None, "a:b/c#d", 1)
    assert not isinstance(e.value, TimeoutError)
    assert time.monotonic() - start < 5


def _serve_each(behaviours: list[Callable[[socket.socket], None]]) -> tuple[str, list[int]]:
    """A fake node that serves one connection with each behaviour in turn; returns its
    address and the list of connections accepted (appended to as they come)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    accepted: list[int] = []

    def run() -> None:
        with server:
            for n, behave in enumerate(behaviours):
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                accepted.append(n)
                threading.Thread(target=_serve_one, args=(conn, behave), daemon=True).start()

    threading.Thread(target=run, daemon=True).start()
    return "127.0.0.1:%d" % server.getsockname()[1], accepted


def _serve_one(conn: socket.socket, behave: Callable[[socket.socket], None]) -> None:
    with conn:
        try:
            behave(conn)
        except OSError:
            pass


def _answer(conn: socket.socket, request: list, value: object) -> None:  # type: ignore[type-arg]
    data = cbor2.dumps([5, request[1], True, value])
    conn.sendall(struct.pack(">I", len(data)) + data)


def _answer_then_close(conn: socket.socket) -> None:
    _, request = _read_request(conn)
    _answer(conn, request, "first")
    time.sleep(0.2)  # then the node closes the connection (as an idle one)


def _answer_and_stay(conn: socket.socket) -> None:
    _, request = _read_request(conn)
    _answer(conn, request, "second")
    time.sleep(2)


def test_a_connection_the_node_closed_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    address, accepted = _serve_each([_answer_then_close, _answer_and_stay])
    with dhost.connect(address=address, iface="127.0.0.1", timeout=5.0) as c:
        assert c.call(None, "a:b/c#d", 1) == "first"
        time.sleep(0.6)  # the node has closed it by now
        assert c.call(None, "a:b/c#d", 2) == "second"
    assert accepted == [0, 1]


def test_a_connection_idle_too_long_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    def answer_and_stay(value: str) -> Callable[[socket.socket], None]:
        def behave(conn: socket.socket) -> None:
            _, request = _read_request(conn)
            _answer(conn, request, value)
            time.sleep(3)

        return behave

    address, accepted = _serve_each([answer_and_stay("first"), answer_and_stay("second")])
    with dhost.connect(address=address, iface="127.0.0.1", timeout=5.0) as c:
        assert c.call(None, "a:b/c#d", 1) == "first"
        monkeypatch.setattr(dhost.connection, "IDLE", 0.0)
        assert c.call(None, "a:b/c#d", 2) == "second"  # not reused although it is open
    assert accepted == [0, 1]


# ---------------------------------------------------------------------------------------
# The group: stale announcements, statuses


def test_a_survey_counts_only_what_arrives_after_its_query() -> None:
    address = unique_group()
    where = Group(address=dhost.discovery.parse_group(address), iface="127.0.0.1", ttl=0)
    client = GroupClient(where)
    sender = where.sender()
    try:
        # An announcement buffered before the survey: a node that may be gone since.
        sender.sendto(_fake_announcement(6, "stale", ["x:y/z#w"]), client.group.address)
        time.sleep(0.1)
        assert client.survey(0.3) == []
        # What comes after the query counts.
        timer = threading.Timer(
            0.1, lambda: sender.sendto(_fake_announcement(7, "fresh", []), client.group.address)
        )
        timer.start()
        peers = client.survey(2.0, until=lambda ps: bool(ps))
        timer.join()
        assert [p.name for p in peers] == ["fresh"]
    finally:
        sender.close()
        client.close()


def test_a_status_is_answered_from_the_held_datagrams_alone() -> None:
    address = unique_group()
    client = GroupClient(Group(address=dhost.discovery.parse_group(address), iface="127.0.0.1", ttl=0))
    try:
        # Held: 101..400 of a stream sent up to 400.
        client._next_seq = 401
        for seq in range(101, 401):
            client._held[seq] = (b"\x80", time.monotonic())
        start = time.monotonic()
        plan, unheld = client._resends([[1, 2**62]])
        assert time.monotonic() - start < 1.0  # not a walk to 2^62
        assert plan == list(range(101, 357)) and unheld  # the cap: 256
        assert client._resends([[150, 160]]) == (list(range(150, 161)), False)
        assert client._resends([[1, 50]]) == ([], True)  # no longer held
        assert client._resends([[390, 500]]) == (list(range(390, 401)), True)  # not sent yet
        plan, unheld = client._resends([[101, 300], [301, 400]])
        assert len(plan) == 256 and unheld
        assert client._resends([["x", 3], [5, 1], [True, 2], "no"]) == ([], False)
    finally:
        client.close()
