"""A connection to one node's TCP port (``docs/wire.md``, "The TCP port"): the magic, the
keyed handshake when the group has a key, the hello, then requests and their replies,
each a CBOR item behind a 4-byte big-endian length.

A :class:`Connection` carries one request at a time (a lock serialises its callers);
replies to requests whose caller gave up waiting are recognised by their id and dropped.
Every read and write has the call's deadline, every length is checked against
:data:`~dhost.wire.MAX_FRAME` before anything is read, and a connection that breaks or
sends anything malformed is closed (the next request opens a new one).

A node closes a connection that stays idle for its ``--idle-timeout`` (a minute by
default): a connection idle for :data:`IDLE` seconds is closed first, as a node's own pool
does (``node/src/rpc/pool.rs``), and before a connection is used again it is checked for
the node's end having closed (a non-blocking peek); if it has, a new one is opened.
"""

from __future__ import annotations

import hmac
import os
import socket
import struct
import threading
import time
from typing import Any, Sequence

import cbor2

from . import wire
from .errors import BadArguments, CallError, PeerGone, ProtocolError, Timeout, failure
from .framekeys import (
    CLIENT_PROOF,
    CLIENT_TO_SERVER,
    SERVER_PROOF,
    SERVER_TO_CLIENT,
    FrameKey,
    transcript_key,
)
from .keys import Keyring

__all__ = ["Connection", "format_address", "IDLE"]

#: A connection with no request for this long (seconds) is closed rather than reused.
IDLE = 30.0

_KIND_CHALLENGE = 9
_KIND_ANSWER = 10
_KIND_REFUSAL = 11
_KIND_PROOF = 12


def format_address(address: tuple[str, int]) -> str:
    """``(host, port)`` as ``host:port`` (``[host]:port`` for IPv6)."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Connection:
    """A connection to the node at ``address`` (named ``node`` in messages), opened on the
    first request."""

    def __init__(
        self,
        address: tuple[str, int],
        *,
        node: str | None = None,
        client_id: int | None = None,
        keys: Keyring | None = None,
        encrypt: bool = False,
        connect_timeout: float = 5.0,
    ) -> None:
        self.address = address
        self.node = node or format_address(address)
        self.client_id = client_id if client_id is not None else int.from_bytes(os.urandom(8), "big")
        self.keys = keys
        self.encrypt = encrypt
        self.connect_timeout = connect_timeout
        self._sock: socket.socket | None = None
        self._buf = bytearray()
        self._send_key: FrameKey | None = None
        self._receive_key: FrameKey | None = None
        self._next_id = 1
        self._lock = threading.Lock()
        self._last_used = time.monotonic()

    def __repr__(self) -> str:
        return f"Connection({self.node} at {format_address(self.address)})"

    # -- opening

    def _where(self) -> str:
        return f"node {self.node} ({format_address(self.address)})"

    def _open(self, deadline: float) -> None:
        try:
            sock = socket.create_connection(
                self.address, timeout=max(0.001, min(self.connect_timeout, deadline - time.monotonic()))
            )
        except socket.timeout:
            raise PeerGone(f"{self._where()}: cannot connect: timed out") from None
        except OSError as e:
            raise PeerGone(f"{self._where()}: cannot connect: {e.strerror or e}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock, self._buf = sock, bytearray()
        self._send_key = self._receive_key = None
        try:
            self._handshake(deadline)
            self._send_frame(wire.encode_hello(self.client_id, None), deadline)
        except socket.timeout:
            self.close()
            raise PeerGone(f"{self._where()}: the handshake did not arrive in time") from None
        except BaseException:
            self.close()
            raise

    def _peer_closed(self) -> bool:
        """Whether the node closed (or reset) the open connection: a peek that does not
        wait. Bytes waiting (a late reply) mean it is open."""
        assert self._sock is not None
        try:
            self._sock.settimeout(0.0)
            return not self._sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return False
        except OSError:
            return True

    def close_if_idle(self) -> None:
        """Closes the connection if no request used it for :data:`IDLE` seconds (and none
        is running)."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            if self._sock is not None and time.monotonic() - self._last_used >= IDLE:
                self.close()
        finally:
            self._lock.release()

    def _handshake(self, deadline: float) -> None:
        """The magic, and with a key the challenge, answer and proof (``socket.timeout``
        if the node is too slow: :meth:`_open` reports it)."""
        magic = wire.MAGIC_KEYED if self.keys else wire.MAGIC
        self._send_raw(magic, deadline)
        nonce = os.urandom(32)
        if self.keys:
            challenge = [_KIND_CHALLENGE, self.keys.sending.id, nonce, self.encrypt]
            self._send_frame(cbor2.dumps(challenge), deadline)
        answer = self._read_exact(4, deadline, "the node's magic")
        if answer != magic:
            if answer == wire.MAGIC_KEYED:
                raise PeerGone(
                    f"{self._where()} requires the group's key: give key_file= (or DHOST_KEY_FILE)"
                )
            if answer == wire.MAGIC:
                raise PeerGone(
                    f"{self._where()} has no group key, and this client has: "
                    "it takes no keyed connections"
                )
            raise PeerGone(f"{self._where()}: the other end is not a dhost node (no magic)")
        if not self.keys:
            return
        item = wire.decode_item(self._read_frame(deadline), "the handshake")
        if isinstance(item, (list, tuple)) and item and item[0] == _KIND_REFUSAL:
            why = item[1] if len(item) > 1 and isinstance(item[1], str) else "no reason given"
            raise PeerGone(f"{self._where()} refused the connection: {why[: wire.MAX_MESSAGE]}")
        if (
            not isinstance(item, (list, tuple))
            or len(item) < 4
            or item[0] != _KIND_ANSWER
            or not isinstance(item[1], bytes)
            or len(item[1]) != 32
            or not isinstance(item[2], bool)
            or not isinstance(item[3], bytes)
        ):
            raise ProtocolError(f"{self._where()}: a malformed handshake answer")
        server_nonce, encrypt, proof = item[1], item[2], item[3]
        if self.encrypt and not encrypt:
            raise PeerGone(f"{self._where()} answered without the encryption asked for")
        key = self.keys.sending
        parts = (key.id, nonce, self.encrypt, server_nonce, encrypt)
        if not hmac.compare_digest(proof, transcript_key(key, SERVER_PROOF, *parts)):
            raise PeerGone(f"{self._where()}: its proof is wrong: it does not hold the group key")
        self._send_frame(
            cbor2.dumps([_KIND_PROOF, transcript_key(key, CLIENT_PROOF, *parts)]), deadline
        )
        self._send_key = FrameKey(transcript_key(key, CLIENT_TO_SERVER, *parts), encrypt)
        self._receive_key = FrameKey(transcript_key(key, SERVER_TO_CLIENT, *parts), encrypt)

    # -- bytes

    def _send_raw(self, data: bytes, deadline: float) -> None:
        """Sends ``data`` by ``deadline``; if the node does not take it in time the
        connection is closed (a frame may be half sent) and ``socket.timeout`` raised."""
        assert self._sock is not None
        try:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("sending")
            self._sock.settimeout(left)
            self._sock.sendall(data)
        except socket.timeout:
            self.close()
            raise
        except OSError as e:
            self.close()
            raise PeerGone(f"the connection to {self._where()} was lost: {e}") from None

    def _send_frame(self, frame: bytes, deadline: float) -> None:
        if self._send_key is not None:
            frame = self._send_key.seal(frame)
        self._send_raw(struct.pack(">I", len(frame)) + frame, deadline)

    def _fill(self, deadline: float, what: str) -> None:
        """Reads what the node sent into the buffer, waiting until ``deadline``."""
        assert self._sock is not None
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout(what)
        self._sock.settimeout(left)
        try:
            data = self._sock.recv(65536)
        except socket.timeout:
            raise
        except OSError as e:
            self.close()
            raise PeerGone(f"the connection to {self._where()} was lost: {e}") from None
        if not data:
            self.close()
            raise PeerGone(f"{self._where()} closed the connection")
        self._buf += data

    def _read_exact(self, n: int, deadline: float, what: str) -> bytes:
        while len(self._buf) < n:
            try:
                self._fill(deadline, what)
            except socket.timeout:
                self.close()
                raise PeerGone(f"{self._where()}: {what} did not arrive in time") from None
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def _take_frame(self) -> bytes | None:
        """The next whole frame in the buffer, if there is one."""
        if len(self._buf) < 4:
            return None
        (length,) = struct.unpack(">I", self._buf[:4])
        limit = wire.MAX_FRAME + (wire.TAG_LEN if self._receive_key else 0)
        if length > limit:
            self.close()
            raise ProtocolError(
                f"{self._where()} sent a frame of {length} bytes (frames are at most {limit})"
            )
        if len(self._buf) < 4 + length:
            return None
        frame = bytes(self._buf[4 : 4 + length])
        del self._buf[: 4 + length]
        if self._receive_key is not None:
            try:
                frame = self._receive_key.open(frame)
            except ValueError as e:
                self.close()
                raise ProtocolError(f"{self._where()}: {e}") from None
        return frame

    def _read_frame(self, deadline: float) -> bytes:
        """The next frame, read within ``deadline`` (``socket.timeout`` if not)."""
        while True:
            frame = self._take_frame()
            if frame is not None:
                return frame
            self._fill(deadline, "a frame")

    # -- requests

    def request(
        self,
        function: str,
        args: Sequence[Any],
        *,
        wants_reply: bool = True,
        timeout: float = 5.0,
    ) -> Any:
        """Runs ``function`` on the node with ``args`` (CBOR-ready values): its result, or
        the failure raised as the :class:`~dhost.errors.CallError` of its kind. Without
        ``wants_reply`` (a cast to this node) it returns once the request is sent."""
        deadline = time.monotonic() + timeout
        if not self._lock.acquire(timeout=max(0.0, timeout)):
            raise Timeout(
                f"the connection to {self._where()} stayed busy for {_seconds(timeout)}",
                function=function,
                node=self.node,
            )
        try:
            request_id = self._next_id
            self._next_id += 1
            frame = request_frame(request_id, function, args, wants_reply, self.node)
            if self._sock is not None and (
                time.monotonic() - self._last_used >= IDLE or self._peer_closed()
            ):
                self.close()  # idle too long, or closed by the node: a new one
            if self._sock is None:
                self._open(deadline)
            try:
                self._send_frame(frame, deadline)
            except socket.timeout:
                raise Timeout(
                    f"{self._where()} did not take the call to {function} within "
                    f"{_seconds(timeout)}",
                    function=function,
                    node=self.node,
                ) from None
            if not wants_reply:
                return None
            while True:
                try:
                    data = self._read_frame(deadline)
                except socket.timeout:
                    raise Timeout(
                        f"no reply from {self._where()} to {function} within {_seconds(timeout)}",
                        function=function,
                        node=self.node,
                    ) from None
                except CallError as e:
                    e.function, e.node = function, self.node
                    raise
                try:
                    reply = wire.decode_reply(data)
                except ProtocolError:
                    self.close()
                    raise
                if reply.id != request_id:
                    continue  # the reply to a request whose caller gave up: dropped
                if reply.ok:
                    return reply.value
                raise failure(reply.kind, reply.message, function=function, node=self.node)
        finally:
            self._last_used = time.monotonic()
            self._lock.release()

    def close(self) -> None:
        """Closes the connection (the next request opens a new one)."""
        sock, self._sock = self._sock, None
        self._buf = bytearray()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass


def request_frame(request_id: int, function: str, args: Sequence[Any], wants_reply: bool, node: str) -> bytes:
    """The request frame of a call of ``function`` to ``node``; :class:`BadArguments` if it
    is larger than a frame carries."""
    frame = wire.encode_request(request_id, function, args, wants_reply)
    if len(frame) > wire.MAX_FRAME:
        raise BadArguments(
            f"the call takes {len(frame)} bytes encoded, more than a frame carries ({wire.MAX_FRAME})",
            function=function,
            node=node,
        )
    return frame


def _seconds(timeout: float) -> str:
    return f"{timeout * 1000:.0f}ms" if timeout < 1 else f"{timeout:g}s"
