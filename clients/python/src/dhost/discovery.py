"""Membership of the multicast group, for a client: joining the group on one interface,
asking every node to announce itself at once (a *survey*, as ``dhost peers`` does) and
collecting the announcements, and casting calls to every node that serves a function (the
client's own *stream* of sequenced datagrams, ``docs/wire.md``, "Streams").

A survey counts only the announcements that arrive after its query: what the group socket
buffered since the last survey (announcements of nodes that may have died since) is
dropped before the query is sent.

The client's stream is kept as a node keeps its own, in small: its datagrams are held for
a few seconds, a receiver's status asking for one that is missing is answered with a
resend (at most 256 per status; for one no longer held, with the stream's position), and
after each cast the position is repeated a few times (5 ms, then doubling pauses) so that
a lost last datagram is found. A cast does not wait for the receivers: a burst of more
than the client holds (a few seconds, a few MiB) can lose calls.
"""

from __future__ import annotations

import collections
import ipaddress
import os
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from . import wire
from .errors import BadArguments, DhostError, ProtocolError
from .gate import Gate

__all__ = ["Group", "Peer", "GroupClient", "DEFAULT_GROUP", "parse_group"]

#: The default group, as in the original DSTC.
DEFAULT_GROUP = ("239.0.0.1", 4723)

_KIND_STATUS = 7

# How long sent datagrams are held for resending, and how many bytes of them at most.
_RETRANSMIT_AGE = 5.0
_RETRANSMIT_BYTES = 4 * 1024 * 1024
# The pauses after a cast at which the position is repeated.
_HEARTBEATS = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.0)
# The most datagrams one status has resent, and the most ranges of it read.
_MAX_RESENDS = 256
_MAX_RANGES = 32
# The most buffered datagrams a survey drops before its query (a flood cannot hold it).
_MAX_DRAIN = 100_000

#: The most nodes a survey keeps the answers of, and the most bytes of them (as `dhost
#: peers` does): a flood of announcements costs a client a bounded memory.
MAX_ANSWERS = 1024
MAX_ANSWER_BYTES = 8 << 20


def parse_group(text: str) -> tuple[str, int]:
    """``"239.0.0.1:4723"`` as ``("239.0.0.1", 4723)``, checked to be an IPv4 multicast
    address and a port."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise DhostError(f"{text!r} is not a group such as 239.0.0.1:4723")
    try:
        addr = ipaddress.IPv4Address(host)
    except ValueError:
        raise DhostError(f"{host!r} is not an IPv4 address") from None
    if not addr.is_multicast:
        raise DhostError(f"{host} is not a multicast address (224.0.0.0/4)")
    number = int(port)
    if not 0 < number < 65536:
        raise DhostError(f"port {number} is out of range")
    return host, number


@dataclass(frozen=True)
class Group:
    """Where the group is and how to reach it."""

    #: The multicast address and port.
    address: tuple[str, int] = DEFAULT_GROUP
    #: The address of the local interface to send and join on (127.0.0.1 keeps every
    #: datagram on this machine).
    iface: str = "127.0.0.1"
    #: How many routers a datagram may cross (0: this host only).
    ttl: int = 1

    def __str__(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"

    @property
    def max_datagram(self) -> int:
        """The largest datagram worth sending: 64 KB on loopback, one Ethernet frame
        elsewhere."""
        return wire.MAX_DATAGRAM if ipaddress.IPv4Address(self.iface).is_loopback else 1472

    def receiver(self) -> socket.socket:
        """A socket that receives the group's datagrams, joined on the interface."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(self.address)
            except OSError as e:
                raise DhostError(f"cannot bind to the group {self}: {e}") from None
            mreq = socket.inet_aton(self.address[0]) + socket.inet_aton(self.iface)
            try:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
            except OSError as e:
                raise DhostError(
                    f"cannot join the group {self.address[0]} on the interface {self.iface} "
                    f"(is it this machine's address?): {e}"
                ) from None
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            except OSError:
                pass
        except BaseException:
            sock.close()
            raise
        return sock

    def sender(self) -> socket.socket:
        """A socket bound to the interface that sends to the group (and hears the statuses
        receivers send back)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        try:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(self.iface))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, struct.pack("b", self.ttl))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            try:
                sock.bind((self.iface, 0))
            except OSError as e:
                raise DhostError(f"cannot bind to the interface {self.iface}: {e}") from None
        except BaseException:
            sock.close()
            raise
        return sock


@dataclass(frozen=True)
class Peer:
    """A node that answered a survey."""

    #: Its name, unique on the group.
    name: str
    #: Its id: the sender id of its datagrams (new each time it starts).
    id: int
    #: Where its datagrams come from.
    source: tuple[str, int]
    #: Its TCP port (where it takes calls with replies), or None.
    tcp: tuple[str, int] | None
    #: The function ids its guests serve.
    functions: tuple[str, ...]
    #: How long it has been up, in milliseconds.
    uptime_ms: int
    #: The peers it holds connections to, with how many.
    links: tuple[tuple[str, int], ...] = ()

    def serves(self, function: str) -> bool:
        """Whether it announces ``function``."""
        return function in self.functions


class GroupClient:
    """A short-lived (or long-lived) member of the group that is not a node: it surveys
    and casts. Close it when done."""

    def __init__(self, group: Group, gate: Gate | None = None, zenoh: dict[str, Any] | None = None) -> None:
        self.group = group
        self.gate = gate or Gate(None)
        self.id = int.from_bytes(os.urandom(8), "big") or 1
        #: The Zenoh network the client reaches the group through, if any (``zenoh``: the
        #: options of :class:`~dhost.zenohlink.ZenohLink`); else multicast.
        self.zenoh: Any = None
        if zenoh is not None:
            from .zenohlink import ZenohLink

            self.zenoh = ZenohLink(group.address, self.id, **zenoh)
            self._receiver: Any = self.zenoh.group
            self._sender: Any = self.zenoh.statuses
        else:
            self._receiver = group.receiver()
            try:
                self._sender = group.sender()
            except BaseException:
                self._receiver.close()
                raise
        self._send_lock = threading.Lock()
        # The function each datagram of the stream calls (Zenoh routes by it).
        self._functions: dict[int, tuple[str, ...]] = {}
        self._next_seq = 1
        self._next_call = 1
        # The stream's datagrams held for resending, oldest first and without gaps:
        # seq -> (their frames, when sent).
        self._held: collections.OrderedDict[int, tuple[bytes, float]] = collections.OrderedDict()
        self._held_bytes = 0
        self._closed = threading.Event()
        self._last_cast = 0.0
        self._casts = 0
        self._keeper: threading.Thread | None = None
        #: Why datagrams were refused, by source (said once each), for hints.
        self.refused: dict[tuple[str, int], str] = {}
        #: How many announcements the last survey left out (past its bounds).
        self.left_out = 0

    # -- sending

    def _send(self, seq: int | None, frames: bytes, to: tuple[str, int] | None = None) -> None:
        """Sends ``frames`` in a datagram numbered ``seq`` (None: a control datagram)."""
        header = wire.encode_header(self.id, seq, 0, 0)
        datagram = header + frames
        if len(datagram) > self.group.max_datagram:
            raise BadArguments(
                f"the call takes {len(datagram)} bytes encoded, more than the "
                f"{self.group.max_datagram} bytes one datagram carries"
            )
        sealed = self.gate.seal(datagram, len(header), self.id)
        if self.zenoh is not None:
            stand_in = None
            if seq is not None:
                bare_header = wire.encode_header(self.id, seq, 0, 0)
                stand_in = self.gate.seal(bare_header, len(bare_header), self.id)
            try:
                self.zenoh.send(sealed, seq, self._functions.get(seq, ()), stand_in)
            except Exception as e:  # (zenoh.ZError)
                raise DhostError(f"cannot send to the group {self.group} through Zenoh: {e}") from None
            return
        try:
            self._sender.sendto(sealed, to or self.group.address)
        except OSError as e:
            raise DhostError(f"cannot send to the group {self.group}: {e}") from None

    def _position(self) -> bytes:
        oldest = next(iter(self._held), self._next_seq)
        return wire.encode_position(self._next_seq, oldest)

    def survey(
        self, wait: float = 0.3, until: Callable[[Sequence[Peer]], bool] | None = None
    ) -> list[Peer]:
        """Asks every node to announce itself and returns those that answer within
        ``wait`` seconds (sorted by name); stops early once ``until(answers)`` holds.
        Only what arrives after the query counts: what was buffered before is dropped.
        At most :data:`MAX_ANSWERS` nodes' answers, and :data:`MAX_ANSWER_BYTES` of them,
        are kept; how many were left out is in ``self.left_out``."""
        self._drain()
        with self._send_lock:
            self._send(None, self._position() + wire.encode_query())
        deadline = time.monotonic() + wait
        answers: dict[int, Peer] = {}
        sizes: dict[int, int] = {}
        kept_bytes = 0
        self.left_out = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([self._receiver], [], [], left)
            if not ready:
                break
            try:
                data, source = self._receiver.recvfrom(65536)
            except BlockingIOError:
                continue
            except OSError as e:
                raise DhostError(f"cannot receive from the group {self.group}: {e}") from None
            for peer in self._announcements(data, source):
                before = sizes.get(peer.id)
                after = kept_bytes - (before or 0) + len(data)
                if (before is None and len(sizes) >= MAX_ANSWERS) or after > MAX_ANSWER_BYTES:
                    self.left_out += 1
                    continue
                kept_bytes = after
                sizes[peer.id] = len(data)
                answers[peer.id] = peer
            if until is not None and until(list(answers.values())):
                break
        return sorted(answers.values(), key=lambda p: p.name)

    def _drain(self) -> None:
        """Drops the datagrams the group socket buffered (announcements heard since the last
        survey, from nodes that may be gone), without waiting."""
        for _ in range(_MAX_DRAIN):
            try:
                ready, _, _ = select.select([self._receiver], [], [], 0)
                if not ready:
                    return
                self._receiver.recvfrom(65536)
            except BlockingIOError:
                continue
            except OSError as e:
                raise DhostError(f"cannot receive from the group {self.group}: {e}") from None

    def _announcements(self, data: bytes, source: tuple[str, int]) -> list[Peer]:
        """The announcements of a datagram from the group (none if it is not one, or does
        not pass the gate: malformed datagrams are for nodes to log, not a client)."""
        try:
            header = wire.decode_header(data)
        except ProtocolError:
            return []
        if header.sender == self.id:
            return []
        body = self.gate.open(header, data)
        if isinstance(body, str):
            if source not in self.refused and len(self.refused) < 64:
                self.refused[source] = body
            return []
        try:
            frames = wire.decode_frames(body)
        except ProtocolError:
            return []
        out = []
        for frame in frames:
            a = frame.announce
            if a is not None:
                out.append(
                    Peer(
                        name=a.name,
                        id=header.sender,
                        source=(source[0], source[1]),
                        tcp=a.tcp,
                        functions=a.functions,
                        uptime_ms=a.uptime_ms,
                        links=a.links,
                    )
                )
        return out

    def unanswered_hint(self) -> str:
        """What to add when no node answered."""
        if self.refused:
            source, why = next(iter(self.refused.items()))
            return f"; datagrams from {source[0]}:{source[1]} were ignored: {why}"
        if self.gate.keys is not None:
            return "; nodes without this group key ignore this client"
        return "; nodes with a group key ignore clients without it (key_file=)"

    def cast(self, function: str, args: Sequence[Any]) -> None:
        """Sends one call of ``function`` with ``args`` (CBOR-ready values) to every node
        that serves it: the next datagram of this client's stream."""
        with self._send_lock:
            seq = self._next_seq
            frames = wire.encode_call(self._next_call, function, args)
            self._functions[seq] = (function,)
            self._send(seq, frames)
            self._hold(seq, frames)
            self._next_seq += 1
            self._next_call += 1
            self._last_cast = time.monotonic()
            self._casts += 1
            if self._keeper is None:
                self._keeper = threading.Thread(
                    target=self._keep_stream, name="dhost-stream", daemon=True
                )
                self._keeper.start()

    def _hold(self, seq: int, frames: bytes) -> None:
        now = time.monotonic()
        self._held[seq] = (frames, now)
        self._held_bytes += len(frames)
        while self._held and (
            self._held_bytes > _RETRANSMIT_BYTES
            or next(iter(self._held.values()))[1] < now - _RETRANSMIT_AGE
        ):
            old_seq, (old, _) = self._held.popitem(last=False)
            self._held_bytes -= len(old)
            self._functions.pop(old_seq, None)

    def _keep_stream(self) -> None:
        """Answers the statuses of the stream's receivers and repeats the stream's position
        after each cast, until the client closes."""
        beat, seen = len(_HEARTBEATS), 0
        while not self._closed.is_set():
            if self._casts != seen:
                seen, beat = self._casts, 0
            since = time.monotonic() - self._last_cast
            pause = _HEARTBEATS[beat] - since if beat < len(_HEARTBEATS) else 0.25
            try:
                ready, _, _ = select.select([self._sender], [], [], min(max(pause, 0.0), 0.25))
            except (OSError, ValueError):
                return  # closed
            if ready:
                try:
                    data, source = self._sender.recvfrom(65536)
                except OSError:
                    continue
                self._status(data, source)
                continue
            if beat < len(_HEARTBEATS) and time.monotonic() - self._last_cast >= _HEARTBEATS[beat]:
                beat += 1
                with self._send_lock:
                    try:
                        self._send(None, self._position())
                    except DhostError:
                        pass

    def _status(self, data: bytes, source: tuple[str, int]) -> None:
        """Answers a receiver's status of this client's stream: resends what it misses."""
        try:
            header = wire.decode_header(data)
        except ProtocolError:
            return
        body = self.gate.open(header, data, unicast=True)
        if isinstance(body, str):
            return
        try:
            frames = wire.decode_frames(body)
        except ProtocolError:
            return
        for frame in frames:
            f = frame.fields
            if frame.kind != _KIND_STATUS or len(f) < 3 or f[0] != self.id:
                continue
            ranges = f[3] if len(f) > 3 and isinstance(f[3], (list, tuple)) else []
            with self._send_lock:
                plan, missing_unheld = self._resends(ranges)
                for seq in plan:
                    try:
                        self._send(seq, self._held[seq][0])
                    except DhostError:
                        return
                if missing_unheld:
                    try:
                        self._send(None, self._position())
                    except DhostError:
                        pass

    def _resends(self, ranges: Sequence[Any]) -> tuple[list[int], bool]:
        """What a status asking for ``ranges`` (``[first, last]`` pairs) is answered with:
        the held datagrams inside them, in order, at most :data:`_MAX_RESENDS`; and whether
        anything asked for is not resent (not held, not sent yet, or over the cap), which
        the stream's position then answers. Only held datagrams are walked: a range that
        reaches far beyond them costs nothing. Called with the send lock held."""
        plan: list[int] = []
        missing_unheld = False
        oldest = next(iter(self._held), self._next_seq)
        newest = self._next_seq - 1  # the held datagrams are oldest..newest, no gaps
        for pair in ranges[:_MAX_RANGES]:
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
                continue
            first, last = pair
            if not (_is_int(first) and _is_int(last)) or first > last:
                continue
            if first < oldest or last > newest:
                missing_unheld = True
            low, high = max(first, oldest), min(last, newest)
            for seq in range(low, high + 1):
                if len(plan) >= _MAX_RESENDS:
                    return plan, True
                if seq in self._held:
                    plan.append(seq)
        return plan, missing_unheld

    def close(self, goodbye: bool = False) -> None:
        """Leaves the group (saying goodbye if asked: a client is not a peer, so nodes do
        not need one)."""
        if self._closed.is_set():
            return
        if goodbye:
            try:
                with self._send_lock:
                    self._send(None, self._position() + wire.encode_goodbye())
            except DhostError:
                pass
        self._closed.set()
        if self._keeper is not None:
            self._keeper.join(timeout=1.0)
        if self.zenoh is not None:
            self.zenoh.close()
            return
        self._receiver.close()
        self._sender.close()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
