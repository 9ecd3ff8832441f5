"""The client: :func:`connect` joins a group (or takes one node's address) and returns a
:class:`Client`, which finds the nodes (:meth:`Client.peers`), lists the functions on
offer (:meth:`Client.functions`), calls (:meth:`Client.call`) and casts
(:meth:`Client.cast`) by function id, fetches an interface's WIT from a node that serves
it (:meth:`Client.describe`) and builds proxies from it (:meth:`Client.interface`).

Routing follows ``docs/calls.md``: a call with a reply goes to the node named, or else to
a node that announces the function (taking turns when several do), over that node's TCP
port; a cast goes to every node that serves the function (a sequenced datagram to the
group), or to one node over its TCP port. The group's view is refreshed by a survey when
it is older than ``refresh`` seconds or lacks what is asked for. Connections to nodes are
kept for the next call (:class:`~dhost.connection.Connection` says how long).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable, Iterable, Sequence

from . import values
from . import wit as witlib  # `wit` is also a parameter of Client.interface
from .connection import Connection, format_address
from .discovery import DEFAULT_GROUP, Group, GroupClient, Peer, parse_group
from .errors import BadArguments, DhostError, NoServer, WitError
from .gate import Gate
from .keys import Keyring, load_key_file
from .proxy import InterfaceProxy
from .zenohlink import ZenohConnection, is_zenoh_address

__all__ = ["connect", "Client", "DESCRIBE"]

#: The function a node answers with the WIT of one of its interfaces.
DESCRIBE = "dhost:node/describe#wit"

# The most connections a client keeps open.
_MAX_CONNECTIONS = 64


def connect(
    group: str | None = None,
    *,
    iface: str | None = None,
    address: str | None = None,
    key_file: str | os.PathLike[str] | None = None,
    encrypt: bool = False,
    ttl: int = 1,
    wait: float = 0.3,
    timeout: float = 5.0,
    refresh: float = 1.0,
    zenoh: str | Sequence[str] | None = None,
    zenoh_mode: str | None = None,
    zenoh_config: str | os.PathLike[str] | None = None,
) -> Client:
    """Joins the group ``group`` (``"239.0.0.1:4723"``; by default ``$DHOST_GROUP`` or
    239.0.0.1:4723) on the interface ``iface`` (by default ``$DHOST_IFACE`` or
    127.0.0.1, which keeps everything on this machine), or with ``address``
    (``"HOST:PORT"``, a node's TCP port) talks to that node alone (give ``group`` too to
    survey the group as well).

    ``key_file`` is the group's key (``dhost keygen``; by default ``$DHOST_KEY_FILE``),
    ``encrypt`` asks for encryption too. ``wait`` is how long a survey waits for
    answers, ``timeout`` the default timeout of calls, in seconds.

    ``zenoh`` (an endpoint such as ``"tcp/10.0.0.1:7447"``, or several; by default
    ``$DHOST_ZENOH``, comma-separated), ``zenoh_mode`` (``"client"`` or ``"peer"``) and
    ``zenoh_config`` (Zenoh's own JSON5 file) reach the group through a Zenoh network
    instead of multicast, as ``dhost``'s options of those names do (``docs/zenoh.md``;
    needs ``pip install 'dhost[zenoh]'``).
    """
    if key_file is None and os.environ.get("DHOST_KEY_FILE"):
        key_file = os.environ["DHOST_KEY_FILE"]
    keys = load_key_file(key_file) if key_file is not None else None
    Gate(keys, encrypt)  # (checks that what encryption needs is there)
    node_address = _parse_address(address) if address is not None else None
    group_client = None
    if address is None or group is not None:
        group_text = group or os.environ.get("DHOST_GROUP") or f"{DEFAULT_GROUP[0]}:{DEFAULT_GROUP[1]}"
        group_address = parse_group(group_text)
        where = Group(
            address=group_address,
            iface=iface or os.environ.get("DHOST_IFACE") or "127.0.0.1",
            ttl=ttl,
        )
        # (Datagram keys are bound to the group, as the nodes bind theirs.)
        bound = keys.for_group(*group_address) if keys is not None else None
        group_client = GroupClient(where, Gate(bound, encrypt), _zenoh_options(zenoh, zenoh_mode, zenoh_config))
    return Client(
        group_client,
        address=node_address,
        keys=keys,
        encrypt=encrypt,
        wait=wait,
        timeout=timeout,
        refresh=refresh,
    )


def _zenoh_options(
    zenoh: str | Sequence[str] | None,
    mode: str | None,
    config: str | os.PathLike[str] | None,
) -> dict[str, Any] | None:
    """The options of a :class:`~dhost.zenohlink.ZenohLink`, if any are given (or set in
    ``$DHOST_ZENOH``, ``$DHOST_ZENOH_MODE``, ``$DHOST_ZENOH_CONFIG``)."""
    if zenoh is None and os.environ.get("DHOST_ZENOH"):
        zenoh = [e for e in os.environ["DHOST_ZENOH"].split(",") if e]
    mode = mode or os.environ.get("DHOST_ZENOH_MODE")
    config = config or os.environ.get("DHOST_ZENOH_CONFIG")
    if zenoh is None and mode is None and config is None:
        return None
    endpoints = [zenoh] if isinstance(zenoh, str) else list(zenoh or ())
    return {"endpoints": endpoints, "mode": mode or "client", "config_file": os.fspath(config) if config else None}


def _parse_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DhostError(f"{text!r} is not an address such as 127.0.0.1:40935")
    return host.strip("[]"), int(port)


class Client:
    """A client of a dhost group (or of one node). Use :func:`connect` to make one, and
    close it (or use it as a context manager) when done."""

    def __init__(
        self,
        group: GroupClient | None,
        *,
        address: tuple[str, int] | None = None,
        keys: Keyring | None = None,
        encrypt: bool = False,
        wait: float = 0.3,
        timeout: float = 5.0,
        refresh: float = 1.0,
    ) -> None:
        self._group = group
        self._address = address
        self._keys = keys
        self._encrypt = encrypt
        self.wait = wait
        self.timeout = timeout
        self.refresh = refresh
        self.id = group.id if group else int.from_bytes(os.urandom(8), "big")
        self._lock = threading.RLock()
        self._peers: list[Peer] = []
        self._surveyed = float("-inf")
        self._turns: dict[str, int] = {}
        self._connections: dict[tuple[str, int], Connection] = {}

    # -- the group

    def __repr__(self) -> str:
        where = []
        if self._group:
            where.append(f"group {self._group.group} on {self._group.group.iface}")
        if self._address:
            where.append(f"node at {format_address(self._address)}")
        return f"<dhost.Client {', '.join(where)}>"

    def _need_group(self, what: str) -> GroupClient:
        if self._group is None:
            raise DhostError(
                f"{what} needs the group: this client talks to the node at "
                f"{format_address(self._address or ('?', 0))} alone (connect(group=...) too)"
            )
        return self._group

    def peers(self, wait: float | None = None) -> list[Peer]:
        """The nodes on the group: those that answer a survey within ``wait`` seconds."""
        group = self._need_group("peers()")
        found = group.survey(self.wait if wait is None else wait)
        with self._lock:
            self._peers, self._surveyed = found, time.monotonic()
        return found

    def functions(self, wait: float | None = None) -> dict[str, list[str]]:
        """Every function on offer: function id -> the names of the nodes that serve it."""
        out: dict[str, list[str]] = {}
        for peer in self.peers(wait):
            for function in peer.functions:
                out.setdefault(function, []).append(peer.name)
        return dict(sorted(out.items()))

    def _view(self, enough: Callable[[Sequence[Peer]], bool]) -> list[Peer]:
        """The peers as last surveyed if that is recent and ``enough(peers)`` holds, else
        a fresh survey that stops as soon as it does."""
        group = self._need_group("finding a node")
        with self._lock:
            fresh = time.monotonic() - self._surveyed < self.refresh
            if fresh and enough(self._peers):
                return self._peers
        found = group.survey(self.wait, until=enough)
        with self._lock:
            self._peers, self._surveyed = found, time.monotonic()
        return found

    def _hint(self) -> str:
        return self._group.unanswered_hint() if self._group else ""

    def _hint_if_alone(self) -> str:
        """The hint, when no node at all answered the last survey."""
        with self._lock:
            return "" if self._peers else self._hint()

    def _find_node(self, name: str) -> Peer:
        peers = self._view(lambda ps: any(p.name == name for p in ps))
        for peer in peers:
            if peer.name == name:
                return peer
        others = ", ".join(p.name for p in peers) or "none"
        raise NoServer(
            f"no node named {name} answered on {self._group.group if self._group else '?'} "
            f"within {self.wait:g}s (nodes that did: {others}){self._hint_if_alone()}",
            node=name,
        )

    def _route(self, function: str, node: str | None) -> tuple[str, tuple[str, int]]:
        """Where a call with a reply to ``function`` goes: the node's name and TCP port."""
        if node is None and self._address is not None:
            return format_address(self._address), self._address
        if node is not None:
            if self._group is None:
                return node, self._address  # type: ignore[return-value]
            peer = self._find_node(node)
        else:
            peers = [p for p in self._view(lambda ps: any(p.serves(function) for p in ps)) if p.serves(function)]
            if not peers:
                raise NoServer(
                    f"no node on {self._need_group('finding a node').group} serves {function}"
                    f"{self._hint_if_alone()}",
                    function=function,
                )
            with self._lock:
                turn = self._turns.get(function, 0)
                self._turns[function] = turn + 1
            peer = peers[turn % len(peers)]
        if peer.tcp is None:
            raise NoServer(f"node {peer.name} takes no calls over TCP (it announced no port)", node=peer.name)
        return peer.name, peer.tcp

    def _connection(self, name: str, address: tuple[str, int]) -> Connection | ZenohConnection:
        if is_zenoh_address(address):
            group = self._need_group(f"calling node {name}, which is reached through Zenoh")
            if group.zenoh is None:
                raise NoServer(
                    f"node {name} is reached through Zenoh, and this client is not on it (zenoh=)",
                    node=name,
                )
            return ZenohConnection(group.zenoh, group.gate, address, name)
        with self._lock:
            # Connections left idle are closed before the node closes them (it does after
            # its --idle-timeout, a minute by default), as a node's own pool does.
            for other in self._connections.values():
                if other.address != address:
                    other.close_if_idle()
            conn = self._connections.get(address)
            if conn is None:
                if len(self._connections) >= _MAX_CONNECTIONS:
                    _, old = self._connections.popitem()
                    old.close()
                conn = Connection(
                    address,
                    node=name,
                    client_id=self.id,
                    keys=self._keys,
                    encrypt=self._encrypt,
                    connect_timeout=min(self.timeout, 5.0),
                )
                self._connections[address] = conn
            return conn

    # -- calls with wire-ready arguments (what proxies use)

    def _call_wire(
        self,
        function: str,
        args: Sequence[Any],
        *,
        node: str | None = None,
        timeout: float | None = None,
        wants_reply: bool = True,
    ) -> tuple[str, Any]:
        _check_function_id(function)
        name, address = self._route(function, node)
        conn = self._connection(name, address)
        result = conn.request(
            function, args, wants_reply=wants_reply, timeout=self.timeout if timeout is None else timeout
        )
        return name, result

    def _cast_wire(self, function: str, args: Sequence[Any], *, node: str | None = None) -> None:
        _check_function_id(function)
        if node is not None or self._group is None:
            self._call_wire(function, args, node=node, wants_reply=False)
            return
        group = self._group
        peers = self._view(lambda ps: any(p.serves(function) for p in ps))
        if not any(p.serves(function) for p in peers):
            raise NoServer(
                f"no node on {group.group} serves {function}{self._hint_if_alone()}", function=function
            )
        group.cast(function, args)

    # -- untyped calls

    def call(self, node: str | None, function: str, *args: Any, timeout: float | None = None) -> Any:
        """Calls ``function`` (``"dhost:kv/store#get"``) on ``node`` (None: any node that
        serves it) with ``args`` as they are (no WIT: see :func:`dhost.values.to_plain`),
        and returns its result as CBOR decoded (arrays as lists, maps as dicts). Raises
        the :class:`~dhost.errors.CallError` of the failure's kind."""
        plain = [_plain(a, i) for i, a in enumerate(args)]
        used, result = self._call_wire(function, plain, node=node, timeout=timeout)
        try:
            return values.from_plain(result)
        except values.ValueMismatch as e:
            raise BadArguments(
                f"the result of {function} from node {used}: {e}", function=function, node=used
            ) from None

    def cast(self, function: str, *args: Any, node: str | None = None) -> None:
        """Sends ``function`` with ``args`` (no WIT) to every node that serves it, or to
        ``node`` alone, without waiting for anything."""
        plain = [_plain(a, i) for i, a in enumerate(args)]
        self._cast_wire(function, plain, node=node)

    # -- interfaces

    def describe(self, interface: str, *, node: str | None = None, timeout: float | None = None) -> str:
        """The WIT of a component that exports ``interface`` (``"dhost:kv/store"``), as a
        node that serves it prints it (``dhost:node/describe#wit``). The node is asked by
        the name its function ids announce, version included (``dhost:kv/store@1.0.0``):
        see :func:`exported_name`."""
        witlib.split_interface_name(interface)  # checks the name
        asked = interface
        if node is None and self._address is None:
            peers = self._view(lambda ps: any(_exports(interface, p.functions) for p in ps))
            serving = [p for p in peers if _exports(interface, p.functions)]
            if not serving:
                raise NoServer(
                    f"no node on {self._need_group('finding a node').group} serves interface "
                    f"{interface}{self._hint_if_alone()}"
                )
            node = serving[0].name
            asked = exported_name(interface, serving[0].functions) or interface
        elif node is not None and self._group is not None:
            # The node's own name for it, if the group's view has the node.
            with self._lock:
                known = next((p for p in self._peers if p.name == node), None)
            if known is not None:
                asked = exported_name(interface, known.functions) or interface
        _, text = self._call_wire(DESCRIBE, [asked], node=node, timeout=timeout)
        if not isinstance(text, str):
            raise WitError(f"node {node} described {interface} with {type(text).__name__}, not text")
        return text

    def interface(
        self,
        name: str,
        *,
        wit: str | None = None,
        node: str | None = None,
        timeout: float | None = None,
    ) -> InterfaceProxy:
        """A proxy of interface ``name`` (``"dhost:kv/store"``) whose methods are its
        functions. Its WIT is fetched from a node that serves it, unless given as
        ``wit`` (a WIT text that defines the interface, such as ``dhost inspect``
        prints). With ``node`` every call goes to that node."""
        text = wit if wit is not None else self.describe(name, node=node, timeout=timeout)
        resolved = witlib.parse(text).interface(name)
        return InterfaceProxy(self, resolved, node=node, timeout=timeout)

    # -- the end

    def close(self) -> None:
        """Closes every connection and leaves the group."""
        with self._lock:
            connections = list(self._connections.values())
            self._connections.clear()
        for conn in connections:
            conn.close()
        if self._group is not None:
            self._group.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _check_function_id(function: str) -> None:
    if not isinstance(function, str) or "#" not in function:
        raise DhostError(f"{function!r} is not a function id (namespace:package/interface#function)")


def exported_name(interface: str, functions: Iterable[str]) -> str | None:
    """The full name under which a node that announces ``functions`` exports
    ``interface``: the part before ``#`` of its function ids, version included
    (``dhost:kv/store@1.0.0`` for ``dhost:kv/store``). An exact match wins; else the one
    version announced; None when the node exports no such interface, or several versions
    of it (then the name as given is for the node to judge)."""
    exact = False
    versions: set[str] = set()
    for function in functions:
        exported = function.partition("#")[0]
        if exported == interface:
            exact = True
        elif exported.startswith(interface + "@"):
            versions.add(exported)
    if exact:
        return interface
    if len(versions) == 1:
        return versions.pop()
    return None


def _exports(interface: str, functions: Iterable[str]) -> bool:
    """Whether a node that announces ``functions`` exports ``interface`` (any version)."""
    prefixes = (interface + "#", interface + "@")
    return any(f.startswith(prefixes) for f in functions)


def _plain(value: Any, index: int) -> Any:
    try:
        return values.to_plain(value)
    except values.ValueMismatch as e:
        raise BadArguments(f"argument {index + 1}: {e}") from None
