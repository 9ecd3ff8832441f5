"""Proxy objects built at run time from an interface's WIT: an :class:`InterfaceProxy`
whose attributes are the interface's functions, with Python names (``read_file`` for
``read-file``), each a :class:`RemoteFunction` that checks and converts its arguments
(:mod:`dhost.values`), sends the call through its :class:`~dhost.client.Client`, and
converts the result back.

A function with results is a call with a reply: it runs on one node and returns its
result. A function without results is a multicast call: calling it *casts* it to every
node that serves it and returns at once (``.call(...)`` instead waits until one node has
run it).

A function named like one of the proxy's own attributes (``name``, ``on``, ``types``,
``node``, ``timeout``, ``client``, ``interface``) is reached by subscription instead:
``proxy["name"]`` (which takes its WIT or its Python name).
"""

from __future__ import annotations

import inspect
import types
from typing import TYPE_CHECKING, Any

from . import values, wit
from .errors import BadArguments, WitError

if TYPE_CHECKING:
    from .client import Client

__all__ = ["InterfaceProxy", "RemoteFunction"]


class RemoteFunction:
    """One function of a remote interface. Call it like a Python function, with its
    parameters by position or by (Python) name."""

    def __init__(self, proxy: InterfaceProxy, function: wit.Function) -> None:
        self._proxy = proxy
        self.function = function
        self.__name__ = function.py_name
        self.__qualname__ = function.py_name
        self.__signature__ = inspect.Signature(
            [
                inspect.Parameter(p.py_name, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                for p in function.params
            ]
        )
        kind = (
            "A multicast call: calling it casts it to every node that serves it."
            if function.result is None
            else "A call with a reply: it runs on one node and returns its result."
        )
        doc = function.doc + "\n\n" if function.doc else ""
        self.__doc__ = f"{doc}WIT: {function.signature()}\n\n{kind}"

    @property
    def function_id(self) -> str:
        """The function id on the wire."""
        return self.function.function_id

    def __repr__(self) -> str:
        return f"<remote function {self.function.function_id}: {self.function.signature()}>"

    def _encode(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        fn = self.function
        if fn.unsupported:
            raise WitError(f"{fn.function_id} cannot be called from the network: {fn.unsupported}")
        try:
            bound = self.__signature__.bind(*args, **kwargs)
        except TypeError as e:
            raise BadArguments(f"{fn.function_id}: {e}", function=fn.function_id) from None
        out = []
        for param in fn.params:
            value = bound.arguments[param.py_name]
            try:
                out.append(values.to_wire(value, param.type))
            except values.ValueMismatch as e:
                raise BadArguments(
                    f"argument {param.py_name} of {fn.function_id}: {e}", function=fn.function_id
                ) from None
        return out

    def _decode(self, result: Any, node: str | None) -> Any:
        fn = self.function
        if fn.result is None:
            return None
        try:
            return values.from_wire(result, fn.result)
        except values.ValueMismatch as e:
            raise BadArguments(
                f"the result of {fn.function_id} from node {node} does not fit {fn.result}: {e}",
                function=fn.function_id,
                node=node,
            ) from None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        encoded = self._encode(args, kwargs)
        proxy = self._proxy
        if self.function.result is None:
            proxy.client._cast_wire(self.function.function_id, encoded, node=proxy.node)
            return None
        node, result = proxy.client._call_wire(
            self.function.function_id, encoded, node=proxy.node, timeout=proxy.timeout
        )
        return self._decode(result, node)

    def call(self, /, *args: Any, node: str | None = None, timeout: float | None = None) -> Any:
        """Calls the function on one node (``node``, or the proxy's, or any that serves
        it) and waits for its result, at most ``timeout`` seconds. For a function without
        results it returns None once that node has run it. The arguments are positional."""
        encoded = self._encode(args, {})
        proxy = self._proxy
        used, result = proxy.client._call_wire(
            self.function.function_id,
            encoded,
            node=node if node is not None else proxy.node,
            timeout=timeout if timeout is not None else proxy.timeout,
        )
        return self._decode(result, used)

    def cast(self, /, *args: Any, node: str | None = None) -> None:
        """Sends the call without waiting for anything: to every node that serves it, or
        to ``node`` (or the proxy's node) alone. The arguments are positional."""
        encoded = self._encode(args, {})
        proxy = self._proxy
        proxy.client._cast_wire(
            self.function.function_id, encoded, node=node if node is not None else proxy.node
        )


class InterfaceProxy:
    """A remote interface: one attribute per function (its Python name), and
    :attr:`types`, the Python classes of its records. ``proxy["read-file"]`` is a
    function by its WIT or Python name: the way to a function whose name is one of the
    proxy's own attributes (:data:`RESERVED`)."""

    #: The proxy's own attributes: functions of these names are reached as ``proxy[name]``.
    RESERVED = frozenset({"name", "on", "types", "node", "timeout", "client", "interface"})

    def __init__(
        self,
        client: Client,
        interface: wit.Interface,
        *,
        node: str | None = None,
        timeout: float | None = None,
    ) -> None:
        self.client = client
        self.interface = interface
        #: The node every call goes to; None: any node that serves the function.
        self.node = node
        #: The timeout of calls with replies, in seconds (None: the client's).
        self.timeout = timeout
        self._functions = {f.py_name: RemoteFunction(self, f) for f in interface.functions.values()}
        record_types = {}
        for name, ty in interface.types.items():
            if isinstance(ty, wit.RecordType):
                record_types[wit.class_name(name)] = values.record_class(ty)
        #: The classes of the interface's records, by class name (``DescriptorStat``).
        self.types = types.SimpleNamespace(**record_types)

    @property
    def name(self) -> str:
        """The interface's full name."""
        return self.interface.name

    def on(self, node: str) -> InterfaceProxy:
        """The same interface, with every call sent to ``node``."""
        return InterfaceProxy(self.client, self.interface, node=node, timeout=self.timeout)

    def __getattr__(self, name: str) -> RemoteFunction:
        functions = self.__dict__.get("_functions", {})
        if name in functions:
            return functions[name]  # type: ignore[no-any-return]
        interface = self.__dict__.get("interface")
        fn = interface.functions.get(name) if interface is not None else None
        if fn is not None:
            return functions[fn.py_name]  # type: ignore[no-any-return]
        where = interface.name if interface is not None else "?"
        raise AttributeError(f"interface {where} has no function {name}")

    def __getitem__(self, name: str) -> RemoteFunction:
        """A function by its WIT or Python name."""
        try:
            return self.__getattr__(name)
        except AttributeError as e:
            raise KeyError(str(e)) from None

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._functions))

    def __iter__(self) -> Any:
        return iter(self._functions.values())

    def __repr__(self) -> str:
        where = f" on {self.node}" if self.node else ""
        return f"<interface {self.interface.name}{where}: {', '.join(self._functions)}>"
