"""Managers: ``multiprocessing.managers``' API over forklift's authenticated connections.

The classes subclass the standard library's; the proxy machinery (``BaseProxy``,
``AutoProxy``, ``Token``, ``register(...)``, ``exposed``, ``method_to_typeid``) is the
standard library's own. What changes:

- Every connection runs :mod:`forklift.connection`'s handshake (HMAC-SHA256 both ways,
  optional TLS, nothing unpickled before it succeeds). A wrong key on ``connect()``
  raises :class:`~forklift.AuthenticationError` saying so.
- Defaults, as in :mod:`forklift.connection`: a TCP address binds 127.0.0.1 unless a
  host is given (``''`` counts as none; ``'0.0.0.0'`` listens on every interface). With
  no ``authkey`` a TCP manager uses the key file (``get_server()``/``start()`` create
  it, mode 0600; ``connect()`` reads it), and a local one (``address=None``: an AF_UNIX
  socket in a private directory) this process's ``multiprocessing`` authkey, which its
  children inherit; so proxies passed to Pool tasks or Processes connect back.
- The server authenticates each connection in that connection's own thread, within
  ``handshake_timeout``: a silent, trickling or garbage-sending peer costs one thread for
  at most that long, is logged on the ``"forklift"`` logger, and never holds up the
  accept loop, which survives every error. (The standard library's server also
  authenticates per thread, but a silent peer pins its thread forever, and its accept
  loop spins when out of file descriptors.)
- TLS: ``ssl_context=`` is the client side (``connect()`` and this manager's proxies),
  ``server_ssl_context=`` the server side (``get_server()``, ``start()``).
  ``start()`` runs both ends, so it takes both, and needs the ``fork`` start method
  (``ctx=multiprocessing.get_context('fork')``): an SSLContext cannot be pickled. A
  proxy sent to another process connects without TLS, so a TLS server refuses it; such
  processes should ``connect()`` a manager of their own.

- ``serializer='xmlrpclib'`` works as in the standard library, over the same
  authenticated connections: the server then parses XML-RPC and unpickles nothing, so
  even a client that knows the key can only call exposed methods with plain values
  (None, bools, 32-bit ints, floats, strings, lists, dicts; no slices, so
  ``list_proxy[:]`` fails, as in the standard library).

Known limit, shared with the standard library: a proxy unpickled in another process
authenticates with that process's ``multiprocessing`` authkey, so proxies of a TCP
manager with its own key work in processes that ``connect()`` themselves, not as Pool
task arguments.

How it plugs in: the standard library looks up Listener and Client by serializer name
in ``multiprocessing.managers.listener_client``, and every proxy carries that name.
forklift's managers use ``"forklift"`` (``"forklift-xmlrpclib"`` for XML-RPC), bound to
:class:`~forklift.connection.RawListener` (the server authenticates) and a Client that
runs forklift's handshake; a manager with ``ssl_context=`` gets a name of its own whose
Client speaks TLS with that context.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing.managers as managers
import signal
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from multiprocessing import ProcessError, process
from multiprocessing.context import BaseContext
from multiprocessing.managers import BaseProxy, Token
from traceback import format_exc
from typing import TYPE_CHECKING, Any, ClassVar

from .connection import (
    HANDSHAKE_TIMEOUT,
    Client,
    Connection,
    RawListener,
    describe_address,
    load_authkey,
    server_handshake,
    wrap_xmlrpc,
)
from .errors import AuthenticationError

if TYPE_CHECKING:
    from multiprocessing.connection import Connection as _StdConnection

__all__ = [
    "BaseManager",
    "BaseProxy",
    "Manager",
    "NamespaceProxy",
    "Server",
    "SharedMemoryManager",
    "SyncManager",
    "Token",
]

_log = logging.getLogger("forklift")
_std: Any = managers  # for the names typeshed leaves out (listener_client, State, NamespaceProxy)

NamespaceProxy: type[BaseProxy] = _std.NamespaceProxy

#: Seconds the accept loop pauses after accept() fails (out of file descriptors, say),
#: instead of retrying in a busy loop as the standard library's does.
_ACCEPT_RETRY = 0.1


class _SerializerName(str):
    """A serializer name of forklift's managers; a pickled proxy carries it."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        # Rebuilding a proxy (in a spawned Pool worker, say) looks this name up in
        # listener_client, which knows it once this module is imported: unpickling
        # this class's reduction imports it.
        return (_serializer_named, (str(self),))


def _serializer_named(name: str) -> str:
    # A TLS manager's name is known only in the processes holding its SSLContext;
    # elsewhere its proxies connect without TLS, and the server refuses them, saying so.
    if name in _std.listener_client:
        return _SerializerName(name)
    return _XML_SERIALIZER if _speaks_xml(name) else _SERIALIZER


def _client(
    address: Any, authkey: bytes | None = None, *, ssl_context: ssl.SSLContext | None = None
) -> Connection:
    if address is None:  # the standard library's type, saying why
        raise ValueError("the manager has no address: start() it, or connect() to a server's address, first")
    return Client(address, authkey=authkey, ssl_context=ssl_context)


def _xml_client(
    address: Any, authkey: bytes | None = None, *, ssl_context: ssl.SSLContext | None = None
) -> Any:
    return wrap_xmlrpc(_client(address, authkey, ssl_context=ssl_context))


def _tls_serializer(context: ssl.SSLContext, base: _SerializerName) -> _SerializerName:
    """A serializer name whose Client speaks TLS with ``context``: the standard library's
    proxies call Client(address, authkey=...) with no other argument."""
    name = _SerializerName(f"{base}-tls-{id(context):x}")  # the entry keeps context, so the id stays its
    client = _xml_client if _speaks_xml(base) else _client
    _std.listener_client[name] = (RawListener, functools.partial(client, ssl_context=context))
    return name


def _speaks_xml(name: str) -> bool:
    return name.startswith(_XML_SERIALIZER)


# serializer= -> the name proxies carry ("forklift", "forklift-xmlrpclib", then "-tls-..." for TLS)
_SERIALIZER = _SerializerName("forklift")
_XML_SERIALIZER = _SerializerName("forklift-xmlrpclib")
_SERIALIZERS = {"pickle": _SERIALIZER, "xmlrpclib": _XML_SERIALIZER}
_std.listener_client[_SERIALIZER] = (RawListener, _client)
_std.listener_client[_XML_SERIALIZER] = (RawListener, _xml_client)


class Server(managers.Server):
    """A manager's server (what ``get_server()`` returns): forklift's handshake on each
    connection, in that connection's thread, and an accept loop that never dies."""

    listener: RawListener  # made by the standard library's __init__, through listener_client
    authkey: bytes

    def __init__(
        self,
        registry: dict[str, Any],
        address: Any,
        authkey: bytes,
        serializer: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
    ) -> None:
        super().__init__(registry, address, authkey, serializer)
        self.ssl_context = ssl_context
        self.handshake_timeout = handshake_timeout
        self._xml = _speaks_xml(serializer)

    def accepter(self) -> None:
        """Accept connections until the listener closes, each served by a thread of its own."""
        while True:
            try:
                sock, peer = self.listener.accept()
            except OSError as exc:
                if self.listener.closed:
                    return
                _log.warning("manager at %s: accept failed: %s", describe_address(self.address), exc)
                time.sleep(_ACCEPT_RETRY)
                continue
            threading.Thread(target=self._serve_socket, args=(sock, peer), daemon=True).start()

    def _serve_socket(self, sock: Any, peer: Any) -> None:
        try:
            conn = server_handshake(sock, peer, self.authkey, self.ssl_context, self.handshake_timeout)
        except AuthenticationError as exc:
            _log.warning("manager at %s: %s", describe_address(self.address), exc)
            return
        self.handle_request(wrap_xmlrpc(conn) if self._xml else conn)

    def handle_request(self, conn: _StdConnection[Any, Any]) -> None:
        """Answer one request on an authenticated connection, then close it."""
        try:
            self._answer(conn)
        except SystemExit:  # serve_client() ends a connection's thread with sys.exit(0) on EOF
            pass
        finally:
            conn.close()

    def _answer(self, conn: _StdConnection[Any, Any]) -> None:
        # The standard library's _handle_request() without its own (HMAC-MD5) challenge,
        # which forklift's handshake replaces.
        try:
            _, funcname, args, kwds = conn.recv()
            if funcname not in self.public:
                raise ValueError(f"{funcname!r} unrecognized")
            func = getattr(self, funcname)
        except Exception:
            msg: tuple[str, Any] = ("#TRACEBACK", format_exc())
        else:
            try:
                msg = ("#RETURN", func(conn, *args, **kwds))
            except Exception:
                msg = ("#TRACEBACK", format_exc())
        try:
            conn.send(msg)
        except Exception:
            _log.debug("manager could not send its answer %r", msg, exc_info=True)
            with suppress(Exception):
                conn.send(("#TRACEBACK", format_exc()))


class BaseManager(managers.BaseManager):
    """``multiprocessing.managers.BaseManager`` over forklift's authenticated connections.

    Same API and arguments, plus keyword-only ``ssl_context`` (client side),
    ``server_ssl_context`` (server side) and ``handshake_timeout`` (seconds a new
    connection gets to authenticate). ``serializer`` is ``'pickle'`` or ``'xmlrpclib'``,
    as in the standard library. See the module's docstring for the defaults of
    ``address`` and ``authkey``.
    """

    _Server: ClassVar[type[Server]] = Server
    # Set by the standard library's BaseManager; typeshed does not declare them.
    _registry: ClassVar[dict[str, Any]]
    _address: Any
    _authkey: bytes
    _serializer: str
    _ctx: BaseContext
    _state: Any

    def __init__(
        self,
        address: Any = None,
        authkey: bytes | None = None,
        serializer: str = "pickle",
        ctx: BaseContext | None = None,
        *,
        shutdown_timeout: float = 1.0,
        ssl_context: ssl.SSLContext | None = None,
        server_ssl_context: ssl.SSLContext | None = None,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
    ) -> None:
        if serializer not in _SERIALIZERS:
            raise ValueError(f"serializer must be 'pickle' or 'xmlrpclib', not {serializer!r}")
        base = _SERIALIZERS[serializer]
        name = base if ssl_context is None else _tls_serializer(ssl_context, base)
        super().__init__(address, authkey, name, ctx)
        self._shutdown_timeout = shutdown_timeout  # read by the standard library from Python 3.11
        self._key_given = authkey is not None
        self._ssl_context = ssl_context
        self._server_ssl_context = server_ssl_context
        self._handshake_timeout = handshake_timeout

    def get_server(self) -> Server:
        """A server for this manager, to run with ``serve_forever()`` in this process."""
        if self._state.value != _std.State.INITIAL:
            raise ProcessError("get_server(): this manager was already started or shut down")
        if self._ssl_context is not None and self._server_ssl_context is None:
            raise ValueError(
                "get_server() serves TLS with server_ssl_context=; ssl_context= is the client side"
            )
        self._use_key_file(create=True)
        return self._Server(self._registry, self._address, self._authkey, self._serializer, **self._options())

    def connect(self) -> None:
        """Connect to a running server at ``address``.

        Raises :class:`~forklift.AuthenticationError` if the server refuses our key.
        """
        self._use_key_file(create=False)
        super().connect()

    def start(self, initializer: Callable[..., object] | None = None, initargs: Iterable[Any] = ()) -> None:
        """Start a server process for this manager (``initializer(*initargs)`` runs in it first)."""
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        self._check_tls_for_start()
        self._use_key_file(create=True)
        # _run_server() unpacks this: the standard library passes nothing else along.
        super().start(None, (self._options(), initializer, tuple(initargs)))

    @classmethod
    def _run_server(
        cls,
        registry: dict[str, Any],
        address: Any,
        authkey: bytes,
        serializer: str,
        writer: Any,
        initializer: None,
        initargs: tuple[dict[str, Any], Callable[..., object] | None, tuple[Any, ...]],
    ) -> None:
        options, user_initializer, user_initargs = initargs
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # bpo-36368: Ctrl-C is the parent's to handle
        if user_initializer is not None:
            user_initializer(*user_initargs)
        server = cls._Server(registry, address, authkey, serializer, **options)
        writer.send(server.address)
        writer.close()
        server.serve_forever()

    def _options(self) -> dict[str, Any]:
        return {"ssl_context": self._server_ssl_context, "handshake_timeout": self._handshake_timeout}

    def _use_key_file(self, *, create: bool) -> None:
        if not self._key_given and isinstance(self._address, tuple):
            self._authkey = process.AuthenticationString(load_authkey(create=create))  # type: ignore[attr-defined]

    def _check_tls_for_start(self) -> None:
        if (self._ssl_context is None) != (self._server_ssl_context is None):
            raise ValueError(
                "start() runs the server and connects to it: pass both server_ssl_context= "
                "(the server's certificate) and ssl_context= (how to check it), or neither"
            )
        if self._server_ssl_context is None:
            return
        method = self._ctx.get_start_method()
        if method != "fork":
            raise ValueError(
                f"an SSLContext cannot be pickled into a {method!r} server process: pass "
                "ctx=multiprocessing.get_context('fork'), or run get_server().serve_forever() yourself"
            )


class SyncManager(BaseManager, managers.SyncManager):
    """``multiprocessing.managers.SyncManager`` (Queue, dict, list, Lock, Namespace, Value, ...)
    over forklift's authenticated connections."""


class SharedMemoryServer(Server, managers.SharedMemoryServer):
    """The server of a :class:`SharedMemoryManager`."""


class SharedMemoryManager(BaseManager, managers.SharedMemoryManager):
    """``multiprocessing.managers.SharedMemoryManager`` over forklift's authenticated connections."""

    _Server = SharedMemoryServer

    def get_server(self) -> SharedMemoryServer:
        """A server for this manager, to run with ``serve_forever()`` in this process."""
        server = super().get_server()
        assert isinstance(server, SharedMemoryServer)
        return server


def Manager(*, start_method: str | None = None) -> SyncManager:
    """A started :class:`SyncManager` for this machine, as ``multiprocessing.Manager()``.

    Its server listens on an AF_UNIX socket in a private directory and accepts this
    process's ``multiprocessing`` authkey, which child processes inherit: its proxies
    can be passed to ``forklift.Pool`` tasks and to Processes. ``start_method`` is that
    of its server process (None: forklift's default, as for a Pool).
    """
    from ._start_methods import resolve_context as get_context

    manager = SyncManager(ctx=get_context(start_method))
    manager.start()
    return manager
