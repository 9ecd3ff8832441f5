"""dhost: a Python client of dhost nodes, which host WebAssembly functions and call each
other over UDP multicast and TCP.

>>> import dhost
>>> with dhost.connect(group="239.255.1.2:4723") as client:    # doctest: +SKIP
...     kv = client.interface("dhost:kv/store")
...     kv.put("k", "v")        # a multicast call: every store runs it
...     kv.get("k")             # a call with a reply: one store answers
'v'

:func:`connect` returns a :class:`Client`; failed calls raise the subclass of
:class:`CallError` of their kind (:class:`NoServer`, :class:`Timeout`, :class:`PeerGone`,
:class:`Trapped`, :class:`BadArguments`, :class:`Refused`, :class:`Unavailable`). WIT
values map to Python values as :mod:`dhost.values` says.
"""

from .client import DESCRIBE, Client, connect
from .discovery import Group, Peer
from .errors import (
    BadArguments,
    CallError,
    DhostError,
    GroupKeyError,
    NoServer,
    PeerGone,
    ProtocolError,
    Refused,
    Timeout,
    Trapped,
    Unavailable,
    WitError,
)
from .proxy import InterfaceProxy, RemoteFunction
from .values import Err, Ok, Some, Variant

__version__ = "0.1.0"

__all__ = [
    "connect",
    "Client",
    "DESCRIBE",
    "Group",
    "Peer",
    "InterfaceProxy",
    "RemoteFunction",
    "Ok",
    "Err",
    "Some",
    "Variant",
    "DhostError",
    "CallError",
    "NoServer",
    "Timeout",
    "PeerGone",
    "Trapped",
    "BadArguments",
    "Refused",
    "Unavailable",
    "WitError",
    "ProtocolError",
    "GroupKeyError",
]
