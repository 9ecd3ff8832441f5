"""The exceptions of the dhost client: one class per failure kind of a call.

Every failure of a call is one of the cases of ``dstc:node/calls.call-error``
(``docs/calls.md``). The client raises the subclass of :class:`CallError` whose
:attr:`CallError.kind` is that case, with the node's own message as the exception's
message, so that ``except dhost.Timeout`` catches a timeout and ``str(error)`` says what
the node said. Failures the client finds itself (no node answers, a connection that cannot
be opened, an argument out of range) are reported with the same classes and the same
kinds as the Rust client uses for them.

Errors that are not failures of a call: :class:`WitError` (a WIT text the client cannot
read, or a type it cannot carry), :class:`ProtocolError` (a node, or something posing as
one, sent bytes that are not the protocol) and :class:`GroupKeyError` (a group key file).
"""

from __future__ import annotations

__all__ = [
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
    "failure",
    "KINDS",
]


class DhostError(Exception):
    """The base of every exception the dhost client raises."""


class CallError(DhostError):
    """A call failed. :attr:`kind` is the case of ``call-error`` (``"timeout"``, ...),
    :attr:`message` the message of the node (or of the client, for failures found before
    anything reached a node); ``str(error)`` is the message."""

    #: The case name of ``dstc:node/calls.call-error`` this class stands for.
    kind: str = ""

    def __init__(self, message: str, *, function: str | None = None, node: str | None = None):
        super().__init__(message)
        self.message = message
        self.function = function
        self.node = node

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class NoServer(CallError):
    """No node serves the function, the named node is not on the group or does not serve
    it, or it announced no TCP port."""

    kind = "no-server"


class Timeout(CallError, TimeoutError):
    """No reply came within the timeout."""

    kind = "timeout"


class PeerGone(CallError, ConnectionError):
    """The connection to the serving node could not be opened, or was lost."""

    kind = "peer-gone"


class Trapped(CallError):
    """The serving guest trapped, or broke a limit of its jail."""

    kind = "trapped"


class BadArguments(CallError, ValueError):
    """The arguments do not fit the function's signature (found by this client before
    sending, or by the serving node), or the result does not fit the caller's WIT."""

    kind = "bad-arguments"


class Refused(CallError, PermissionError):
    """The serving guest's jail does not let this caller in (its ``serve`` list)."""

    kind = "refused"


class Unavailable(CallError):
    """The serving guest waits to restart, or the serving node is overloaded."""

    kind = "unavailable"


#: The exception class of each failure kind, by its wire name.
KINDS: dict[str, type[CallError]] = {
    cls.kind: cls
    for cls in (NoServer, Timeout, PeerGone, Trapped, BadArguments, Refused, Unavailable)
}


def failure(
    kind: str, message: str, *, function: str | None = None, node: str | None = None
) -> CallError:
    """The exception for a failure of ``kind`` (a case name from the wire)."""
    cls = KINDS.get(kind)
    if cls is None:
        # A newer node may know more kinds: keep its word, as a plain CallError.
        error = CallError(f"{kind}: {message}", function=function, node=node)
        error.kind = kind
        return error
    return cls(message, function=function, node=node)


class WitError(DhostError):
    """A WIT text that cannot be read, a name it does not define, or a type the client
    cannot carry (resources, futures, streams)."""


class ProtocolError(DhostError):
    """Bytes from the network that are not the dhost protocol: malformed CBOR, a frame of
    the wrong shape, a length over the limit."""


class GroupKeyError(DhostError):
    """A group key file that cannot be read or used."""
