"""The client over a Zenoh network (``connect(zenoh="tcp/10.0.0.1:7447")``), where
multicast cannot reach the group's nodes: the same datagrams and requests as on a LAN,
sealed the same way, carried as Zenoh publications and queries on the group's key
expressions (``docs/zenoh.md``), through Eclipse Zenoh's own Python package
(``pip install 'dhost[zenoh]'``).

:class:`ZenohLink` gives :class:`~dhost.discovery.GroupClient` what its sockets give it
on a LAN: an inbox of the group's control datagrams and one of the statuses sent to the
client alone (each a socket pair fed by Zenoh's callbacks, so that the client's
``select`` loops take them as they take datagrams), and sending. :class:`ZenohConnection`
is a :class:`~dhost.connection.Connection` to a node reached through Zenoh: a request is
a query on the node's key.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
from typing import Any, Sequence

from . import wire
from .connection import request_frame
from .errors import DhostError, PeerGone, ProtocolError, Timeout, failure
from .gate import Gate

__all__ = ["ZenohLink", "ZenohConnection", "is_zenoh_address", "zenoh_address", "chunk"]

# A node reached through Zenoh goes by an address of the discard-only prefix 100::/64,
# with its sender id in the low 64 bits, and port 0.
_PREFIX = 0x0100 << 112

# The most functions a stream datagram's key names.
_MAX_KEY_FUNCTIONS = 16

_UNRESERVED = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._~:-")


def chunk(text: str) -> str:
    """One key-expression chunk for ``text``, as the nodes make it: unreserved bytes as
    they are, every other byte as ``%XX``, the empty string as ``%``."""
    if not text:
        return "%"
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in text.encode())


def bare(function: str) -> str:
    """A function's bare name: the part after ``#``, or all of it."""
    return function.rpartition("#")[2]


def zenoh_address(sender: int) -> tuple[str, int]:
    """The address node ``sender``, reached through Zenoh, goes by."""
    return str(ipaddress.IPv6Address(_PREFIX | sender)), 0


def is_zenoh_address(address: tuple[str, int]) -> bool:
    """Whether ``address`` is that of a node reached through Zenoh."""
    try:
        ip = ipaddress.ip_address(address[0])
    except ValueError:
        return False
    return address[1] == 0 and isinstance(ip, ipaddress.IPv6Address) and int(ip) >> 64 == _PREFIX >> 64


def _zenoh() -> Any:
    try:
        import zenoh
    except ImportError:
        raise DhostError(
            "a Zenoh network needs Eclipse Zenoh's Python package: pip install 'dhost[zenoh]' "
            "(eclipse-zenoh)"
        ) from None
    return zenoh


class _Inbox:
    """What a Zenoh subscription heard, as a socket the client's ``select`` loops read:
    ``recvfrom`` gives a datagram and where it came from (``zenoh/<sender>``)."""

    def __init__(self) -> None:
        self._read, self._write = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._write.setblocking(False)
        self._read.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)

    def feed(self, sender: int, data: bytes) -> None:
        """Called on Zenoh's threads: never blocks (what does not fit is dropped, as a
        kernel drops what overflows a socket)."""
        try:
            self._write.send(sender.to_bytes(8, "big") + data)
        except OSError:
            pass

    def fileno(self) -> int:
        return self._read.fileno()

    def recvfrom(self, size: int) -> tuple[bytes, tuple[str, int]]:
        data = self._read.recv(size + 8)
        sender = int.from_bytes(data[:8], "big")
        return data[8:], zenoh_address(sender)

    def setblocking(self, flag: bool) -> None:
        self._read.setblocking(flag)

    def close(self) -> None:
        self._read.close()
        self._write.close()


class ZenohLink:
    """A client's session with a Zenoh network, for the group at ``group`` (its address,
    which names it), as sender ``client_id``."""

    def __init__(
        self,
        group: tuple[str, int],
        client_id: int,
        *,
        endpoints: Sequence[str] = (),
        mode: str = "client",
        config_file: str | None = None,
    ) -> None:
        zenoh = _zenoh()
        if mode not in ("client", "peer"):
            raise DhostError(f"zenoh_mode {mode!r}: say client or peer")
        if mode == "client" and not endpoints and config_file is None:
            raise DhostError("a Zenoh client needs a router to connect to: zenoh='tcp/HOST:7447'")
        config = zenoh.Config.from_file(config_file) if config_file else zenoh.Config()
        if config_file is None:
            config.insert_json5("scouting/multicast/enabled", "false")
        config.insert_json5("mode", json.dumps(mode))
        if endpoints:
            config.insert_json5("connect/endpoints", json.dumps(list(endpoints)))
        try:
            self.session = zenoh.open(config)
        except Exception as e:  # (zenoh.ZError)
            raise DhostError(f"cannot join the Zenoh network at {', '.join(endpoints)}: {e}") from None
        self.id = client_id
        self.root = f"dhost/{chunk(f'{group[0]}:{group[1]}')}"
        self.group = _Inbox()
        self.statuses = _Inbox()
        self._congestion = zenoh.CongestionControl.BLOCK
        self._subscribers = [
            self.session.declare_subscriber(f"{self.root}/c/*", lambda s: self._hear(self.group, s)),
            self.session.declare_subscriber(
                f"{self.root}/u/{client_id:016x}", lambda s: self._hear_status(s)
            ),
        ]

    def _sender_of(self, key: str) -> int | None:
        rest = key[len(self.root) + 1 :] if key.startswith(self.root + "/") else ""
        parts = rest.split("/")
        if len(parts) < 2 or len(parts[1]) != 16:
            return None
        try:
            return int(parts[1], 16)
        except ValueError:
            return None

    def _hear(self, inbox: _Inbox, sample: Any) -> None:
        sender = self._sender_of(str(sample.key_expr))
        if sender is not None and sender != self.id:
            inbox.feed(sender, sample.payload.to_bytes())

    def _hear_status(self, sample: Any) -> None:
        data = sample.payload.to_bytes()
        try:
            sender = wire.decode_header(data).sender
        except ProtocolError:
            sender = 0
        self.statuses.feed(sender, data)

    def _put(self, key: str, payload: bytes) -> None:
        self.session.put(key, payload, congestion_control=self._congestion)

    def send(self, sealed: bytes, seq: int | None, functions: Sequence[str], stand_in: bytes | None) -> None:
        """Sends a sealed datagram to the group: a control datagram (``seq`` None) to every
        node; one of the client's stream, with calls to ``functions``, to the nodes that
        serve them, and ``stand_in`` (its header, sealed) to the others."""
        me = f"{self.id:016x}"
        if seq is None:
            self._put(f"{self.root}/c/{me}", sealed)
            return
        chunks = sorted({chunk(bare(f)) for f in functions})
        if not chunks or len(chunks) > _MAX_KEY_FUNCTIONS or stand_in is None:
            self._put(f"{self.root}/x/{me}", sealed)
            return
        path = "/".join(chunks)
        self._put(f"{self.root}/s/{me}/{path}", sealed)
        self._put(f"{self.root}/x/{me}/{path}", stand_in)

    def query(self, node: int, payload: bytes, timeout: float) -> tuple[bytes | None, str | None]:
        """Asks node ``node`` (its sender id) with ``payload``: its reply's bytes, or why
        there is none."""
        replies = self.session.get(
            f"{self.root}/q/{node:016x}", payload=payload, timeout=max(timeout, 0.001)
        )
        for reply in replies:
            if reply.ok is not None:
                return reply.ok.payload.to_bytes(), None
            return None, reply.err.payload.to_string()
        return None, None

    def close(self) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber.undeclare()
            except Exception:
                pass
        try:
            self.session.close()
        except Exception:
            pass
        self.group.close()
        self.statuses.close()


class ZenohConnection:
    """Requests to one node reached through Zenoh (its ``address``, :func:`zenoh_address`),
    as :class:`~dhost.connection.Connection` makes them over TCP: each a query on the
    node's key, sealed as a datagram to one node."""

    def __init__(self, link: ZenohLink, gate: Gate, address: tuple[str, int], node: str) -> None:
        self.address = address
        self.node = node
        self._link = link
        self._gate = gate
        self._target = int(ipaddress.IPv6Address(address[0])) & ((1 << 64) - 1)
        self._next_id = 1
        self._lock = threading.Lock()

    def close_if_idle(self) -> None:
        """(Nothing to close: queries hold no connection.)"""

    def close(self) -> None:
        """(Nothing to close.)"""

    def request(
        self,
        function: str,
        args: Sequence[Any],
        *,
        wants_reply: bool = True,
        timeout: float = 5.0,
    ) -> Any:
        """Runs ``function`` on the node with ``args``: its result, or the failure raised as
        the :class:`~dhost.errors.CallError` of its kind (a cast returns once it is taken)."""
        with self._lock:
            request_id = self._next_id
            self._next_id += 1
        frame = request_frame(request_id, function, args, wants_reply, self.node)
        header = wire.encode_header(self._link.id, None, 0, 0)
        sealed = self._gate.seal(header + frame, len(header), self._link.id, unicast=True)
        started = time.monotonic()
        data, why = self._link.query(self._target, sealed, timeout)
        where = f"node {self.node} (zenoh/{self._target:016x})"
        if data is None:
            if why is None and time.monotonic() - started >= timeout * 0.9:
                raise Timeout(f"no reply from {where} to {function} within {timeout:g}s",
                              function=function, node=self.node)
            raise PeerGone(
                f"{where}: " + (why or "no node answers at its Zenoh key (it left, or no router reaches it)"),
                function=function,
                node=self.node,
            )
        try:
            reply_header = wire.decode_header(data)
        except ProtocolError as e:
            raise PeerGone(f"{where} sent an unreadable reply: {e}", function=function, node=self.node) from None
        if reply_header.sender != self._target:
            raise PeerGone(f"{where}: the reply came from another node", function=function, node=self.node)
        body = self._gate.open(reply_header, data, unicast=True)
        if isinstance(body, str):
            raise PeerGone(f"{where}: its reply was refused: {body}", function=function, node=self.node)
        try:
            reply = wire.decode_reply(body)
        except ProtocolError as e:
            raise PeerGone(f"{where} sent an unreadable reply: {e}", function=function, node=self.node) from None
        if reply.ok:
            return reply.value if wants_reply else None
        raise failure(reply.kind, reply.message, function=function, node=self.node)
