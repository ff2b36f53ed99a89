"""Connections between processes: ``multiprocessing.connection``'s API, secure by default.

:class:`Listener`, :func:`Client`, :func:`wait` and :class:`Connection` behave as the
standard library's (``send``/``recv``/``send_bytes``/``recv_bytes``/``poll``/``close``,
context managers, ``Listener.address`` and ``last_accepted``, the same wire framing).
The module has the standard library's other public names too: :func:`Pipe` (forklift's,
whose ends pickle at any time), ``families``, ``default_family``, :func:`address_type`,
:func:`arbitrary_address`, ``BufferTooShort``, :func:`deliver_challenge` and
:func:`answer_challenge` (forklift's handshake, each side), ``ConnectionWrapper``,
:class:`XmlListener` and :func:`XmlClient`; not the standard library's own protocol
constants and socket plumbing. The differences:

Addresses
    A TCP address ``(host, port)`` binds 127.0.0.1 unless a host is given, and host
    ``''`` counts as not given (the standard library, and the tutorial's
    ``address=('', 5000)``, listen on every interface). Listening on every interface
    takes an explicit ``'0.0.0.0'``. AF_UNIX paths work as in the standard library
    (``bytes`` paths too); a Listener with no address (None, ``''``) gets a fresh AF_UNIX
    socket in a private temporary directory. A Client needs an address: None is a
    ValueError, as in the standard library, and an address that does not fit its
    family a TypeError saying so.

Keys
    Every connection is authenticated. With no ``authkey``:

    - an AF_UNIX address uses ``multiprocessing.current_process().authkey``, which child
      processes inherit: only this process and its children know it;
    - a TCP address uses the key file, :func:`authkey_path` (``$FORKLIFT_AUTHKEY_FILE``,
      else ``$XDG_CONFIG_HOME/forklift/authkey``, else ``~/.config/forklift/authkey``).
      A Listener creates it if missing (32 random bytes as 64 hex digits, mode 0600); a
      Client only reads it. The key is the file's content without surrounding
      whitespace, so the same user on the same machine needs no argument, and another
      machine can use a copy of the file. A file that other users can read is refused.

    There is no default key string.

Handshake
    Client and server prove to each other that they know the key: HMAC-SHA256 over two
    fresh 32-byte nonces, one from each side, labelled by role. Nothing is unpickled
    before both proofs check out. A failure raises :class:`~forklift.AuthenticationError`
    in the client, saying what happened ("authentication failed: the server at
    127.0.0.1:5000 refused our key (...)"). A server logs its side as a warning on the
    ``"forklift"`` logger and goes on: ``Listener.accept()`` skips a peer with a wrong key,
    garbage, a failed TLS handshake or silence past ``handshake_timeout`` instead of
    raising, so one bad peer cannot end a server's accept loop.

    The server's side of the handshake runs in ``Listener.accept()``: a Client waits for
    it, as the standard library's does when given an authkey (forklift always
    authenticates). So a Client made before ``accept()`` in the thread that is to call
    it can never finish: it gives up after ``handshake_timeout`` (``HANDSHAKE_TIMEOUT``,
    5 s, from the connect; None waits for ever) with an AuthenticationError saying so.
    Call ``accept()`` in another thread (as a server loop does). A client of a server
    that may take longer to come back to ``accept()`` (one serving clients one at a
    time) passes a longer ``handshake_timeout``.

TLS
    ``ssl_context=`` (an :class:`ssl.SSLContext`) wraps the socket before the handshake:
    a server-side context for a Listener, a client-side one for Client. The standard
    library's Connection reads and writes the file descriptor directly, which bypasses
    TLS; this module's :class:`Connection` goes through the socket object instead.
"""

from __future__ import annotations

import contextlib
import hmac
import io
import logging
import multiprocessing
import multiprocessing.connection as mpc
import os
import secrets
import socket
import ssl
import stat
import struct
import tempfile
import time
from collections.abc import Iterable, Iterator
from multiprocessing import BufferTooShort, util
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

from ._primitives.pipe import Pipe
from .errors import AuthenticationError

if TYPE_CHECKING:
    _StdConnection = mpc.Connection[Any, Any]
else:  # not subscriptable at run time
    _StdConnection = mpc.Connection

__all__ = [
    "HANDSHAKE_TIMEOUT",
    "AuthenticationError",
    "BufferTooShort",
    "Client",
    "Connection",
    "ConnectionWrapper",
    "Listener",
    "Pipe",
    "XmlClient",
    "XmlListener",
    "address_type",
    "answer_challenge",
    "arbitrary_address",
    "authkey_path",
    "default_family",
    "deliver_challenge",
    "families",
    "load_authkey",
    "wait",
]

#: The address families a Listener and a Client take (the standard library's, but for
#: Windows' AF_PIPE); ``default_family`` is a Listener's when given no address.
families = ["AF_INET", "AF_UNIX"]
default_family = "AF_UNIX"

#: Seconds a server gives a new connection to finish its handshake (TLS included)
#: before dropping it, and a Client its server (from the connect, so accept() must come
#: within it). Longer: tolerates slower networks and servers slow to accept; shorter: a
#: silent peer holds ``Listener.accept()`` (which handshakes one peer at a time) for less long.
HANDSHAKE_TIMEOUT = 5.0

_log = logging.getLogger("forklift")

_HELLO = b"#FORKLIFT-HMAC-SHA256-1#"
_WELCOME = b"#WELCOME#"
_FAILURE = b"#FAILURE#"
_NONCE_BYTES = 32
_MAX_HANDSHAKE_MESSAGE = 256
_RECV_CHUNK = 1 << 20  # socket.recv(n) allocates n bytes: read big messages in pieces


# -- keys ---------------------------------------------------------------------------


def authkey_path() -> Path:
    """The key file a TCP Listener with no ``authkey`` uses (and creates), and a Client reads.

    ``$FORKLIFT_AUTHKEY_FILE`` if set, else ``$XDG_CONFIG_HOME/forklift/authkey`` (if that
    variable holds an absolute path), else ``~/.config/forklift/authkey``.
    """
    override = os.environ.get("FORKLIFT_AUTHKEY_FILE")
    if override:
        return Path(override).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME", "")
    base = Path(config) if os.path.isabs(config) else Path.home() / ".config"
    return base / "forklift" / "authkey"


def load_authkey(*, create: bool = False) -> bytes:
    """The key in :func:`authkey_path`; with ``create=True`` make the file first if missing.

    Raises FileNotFoundError if there is no file (and ``create`` is false), and
    PermissionError if users other than its owner may read or write it.
    """
    path = authkey_path()
    if create and not path.exists():
        _create_key_file(path)
    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            key = f.read().strip()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no authkey given and no key file {path}: pass authkey=, or set FORKLIFT_AUTHKEY_FILE "
            "(a forklift server started with no authkey creates this file for its user)"
        ) from None
    if mode & 0o077:
        raise PermissionError(
            f"key file {path} is open to other users (mode {stat.S_IMODE(mode):o}); run: chmod 600 {path}"
        )
    if not key:
        raise ValueError(f"key file {path} is empty")
    return key


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".authkey-")  # mkstemp makes it 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        # link() is atomic and never replaces: two servers starting at once agree on one key.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
            _log.info("created the authkey file %s", path)
    finally:
        os.unlink(tmp)


def _pick_authkey(authkey: bytes | None, family: str, *, create: bool) -> tuple[bytes, str]:
    """The key to use and, for error messages, where it came from."""
    if authkey is not None:
        return _checked_authkey(authkey), "the authkey passed in"
    if family == "AF_UNIX":
        return multiprocessing.current_process().authkey, "this process's multiprocessing authkey"
    return load_authkey(create=create), f"the key in {authkey_path()}"


def _checked_authkey(authkey: bytes) -> bytes:
    if not isinstance(authkey, bytes):
        raise TypeError("authkey should be a byte string")
    if not authkey:
        raise ValueError("authkey must not be empty: forklift always authenticates")
    return authkey


# -- addresses ----------------------------------------------------------------------


def _resolve_address(address: Any, family: str | None) -> tuple[str, Any]:
    """(family, address) with forklift's defaults applied (no address: a fresh one); idempotent."""
    if not address:  # None, or the standard library's other "no address": '' or ()
        family = _check_family(family or default_family)
        return family, arbitrary_address(family)
    return _check_address(address, family)


def _check_address(address: Any, family: str | None) -> tuple[str, Any]:
    """(family, address) for an address given: a clear error if it does not fit the family."""
    kind = address_type(address)  # ValueError for None, as the standard library's Client
    family = _check_family(family or kind)
    if family == "AF_INET":
        if not (isinstance(address, tuple) and len(address) == 2):
            raise TypeError(f"an AF_INET address is a pair (host, port), not {address!r}")
        host, port = address
        return family, (host or "127.0.0.1", port)
    if not isinstance(address, (str, bytes)):
        raise TypeError(f"an AF_UNIX address is a path (str, or bytes), not {address!r}")
    return family, address


def _check_family(family: str) -> str:
    if family not in families:
        raise ValueError(f"family {family!r} is not supported: use 'AF_INET' or 'AF_UNIX'")
    return family


def address_type(address: Any) -> str:
    """The family of an address: ``'AF_INET'`` for a ``(host, port)`` tuple, ``'AF_UNIX'`` for a path.

    As ``multiprocessing.connection.address_type`` (a ``bytes`` path counts too):
    ValueError for no address (None, ``''``), TypeError for another type.
    """
    if isinstance(address, tuple):
        return "AF_INET"
    if isinstance(address, (str, bytes)) and address:
        return "AF_UNIX"
    error = ValueError if not address else TypeError
    raise error(f"address type of {address!r} unrecognized")


def arbitrary_address(family: str) -> Any:
    """A fresh address: ``('127.0.0.1', 0)`` (the port is picked at bind), or a new socket path."""
    if family == "AF_INET":
        return ("127.0.0.1", 0)
    if family == "AF_UNIX":  # in multiprocessing's private (0700) temporary directory
        return mpc.arbitrary_address("AF_UNIX")  # type: ignore[attr-defined]
    raise ValueError(f"unrecognized family {family!r}")


def describe_address(address: Any) -> str:
    """An address as people write it: ``127.0.0.1:5000``, a socket path, or "an unnamed AF_UNIX socket"."""
    if isinstance(address, tuple):
        return f"{address[0]}:{address[1]}"
    return str(address) if address else "an unnamed AF_UNIX socket"


# -- the connection -----------------------------------------------------------------


class Connection(_StdConnection):
    """A connection over a socket, plain or TLS: ``multiprocessing.connection.Connection``'s API.

    Same methods and wire framing as the standard library's; it reads and writes through
    the socket object (the standard library uses ``os.read``/``os.write`` on the file
    descriptor, which would bypass TLS). Made by :func:`Client` and ``Listener.accept()``.
    """

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock.fileno())
        if sock.family == socket.AF_INET:
            # Back-to-back small writes (TLS's Finished, then our hello) otherwise wait
            # out Nagle's algorithm against a delayed ACK: 40 ms per TLS connection.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._deadline: float | None = None  # set only while handshaking

    def _send(self, buf: Any) -> None:
        self._apply_deadline()
        self._sock.sendall(buf)

    def _recv(self, size: int) -> io.BytesIO:
        # The standard library's loop, reading from the socket object.
        buf = io.BytesIO()
        remaining = size
        while remaining > 0:
            self._apply_deadline()
            chunk = self._sock.recv(min(remaining, _RECV_CHUNK))
            if not chunk:
                if remaining == size:
                    raise EOFError
                raise OSError("got end of file during message")
            buf.write(chunk)
            remaining -= len(chunk)
        return buf

    def _poll(self, timeout: float | None) -> bool:
        return bool(wait([self], timeout))

    def _close(self) -> None:
        self._sock.close()

    def _tls_pending(self) -> bool:
        # Bytes TLS already decrypted sit in the SSL object, invisible to select() on the fd.
        return isinstance(self._sock, ssl.SSLSocket) and self._sock.pending() > 0

    def _set_deadline(self, timeout: float | None) -> None:
        self._deadline = None if timeout is None else time.monotonic() + timeout
        if timeout is None:
            self._sock.settimeout(None)

    def _apply_deadline(self) -> None:
        # One deadline for the whole handshake: a peer trickling a byte at a time cannot
        # stretch it, as a per-call socket timeout would let it.
        if self._deadline is not None:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("handshake deadline passed")
            self._sock.settimeout(left)

    def _start_tls(self, context: ssl.SSLContext, *, server_side: bool, server_hostname: str | None) -> None:
        self._sock = context.wrap_socket(
            self._sock,
            server_side=server_side,
            server_hostname=server_hostname,
            do_handshake_on_connect=False,
        )
        self._apply_deadline()
        self._sock.do_handshake()


def wait(object_list: Iterable[Any], timeout: float | None = None) -> list[Any]:
    """``multiprocessing.connection.wait`` that also sees data buffered inside a TLS connection."""
    objects = list(object_list)
    ready = [obj for obj in objects if isinstance(obj, Connection) and obj._tls_pending()]
    return ready or mpc.wait(objects, timeout)


# -- the handshake ------------------------------------------------------------------


def _proof(authkey: bytes, role: bytes, client_nonce: bytes, server_nonce: bytes) -> bytes:
    return hmac.new(authkey, role + client_nonce + server_nonce, "sha256").digest()


def _recv_handshake_message(conn: _StdConnection) -> bytes | None:
    """One handshake message, or None if its header announces more than any holds."""
    (size,) = struct.unpack("!i", conn._recv(4).getvalue())  # type: ignore[attr-defined]
    if not 0 <= size <= _MAX_HANDSHAKE_MESSAGE:
        return None
    return conn._recv(size).getvalue()  # type: ignore[attr-defined,no-any-return]


def _read_hello(conn: _StdConnection, who: str) -> bytes:
    """The peer's nonce from its hello, or AuthenticationError if it is not a forklift peer."""
    msg = _recv_handshake_message(conn)
    if msg is None or len(msg) != len(_HELLO) + _NONCE_BYTES or not msg.startswith(_HELLO):
        raise AuthenticationError(f"{who} does not speak forklift's protocol")
    return msg[len(_HELLO) :]


class _Hints(NamedTuple):
    """What a failed handshake's message adds, after an end of file or a timeout."""

    eof: str = ""
    timeout: str = ""


# A Client's timeout: the server may never have reached accept().
_NOT_ACCEPTED = (
    " (a Listener answers only in accept(): a Client made before accept() in the thread that"
    " is to call it waits for ever; pass handshake_timeout= to wait longer, None for no limit)"
)


def _why(exc: OSError | EOFError, who: str, timeout: float | None, hints: _Hints) -> str:
    if isinstance(exc, TimeoutError):
        return f"{who} did not finish the handshake within {timeout} s{hints.timeout}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake with {who} failed: {exc.reason or exc}"
    if isinstance(exc, (EOFError, ConnectionError)):
        return f"{who} closed the connection during the handshake{hints.eof}"
    return f"handshake with {who} failed: {exc}"


@contextlib.contextmanager
def _handshaking(
    conn: Connection, who: str, timeout: float | None, hints: _Hints = _Hints()
) -> Iterator[None]:
    """Run a handshake on ``conn`` within ``timeout``; on failure close it and raise
    AuthenticationError saying why, instead of a socket or TLS error."""
    conn._set_deadline(timeout)
    try:
        yield
    except (OSError, EOFError) as exc:
        conn.close()
        raise AuthenticationError(_why(exc, who, timeout, hints)) from None
    except BaseException:
        conn.close()
        raise
    conn._set_deadline(None)


def server_handshake(
    sock: socket.socket,
    peer: Any,
    authkey: bytes,
    ssl_context: ssl.SSLContext | None,
    timeout: float | None,
) -> Connection:
    """Authenticate a freshly accepted socket: TLS first if a context is given, then HMAC.

    Returns the connection, or closes the socket and raises AuthenticationError saying
    why the peer was dropped. Used by :class:`Listener` and forklift's manager servers.
    """
    who = f"the client at {describe_address(peer)}"
    conn = Connection(sock)
    with _handshaking(conn, who, timeout):
        if ssl_context is not None:
            conn._start_tls(ssl_context, server_side=True, server_hostname=None)
        _server_handshake(conn, authkey, who)
    return conn


def _server_handshake(conn: _StdConnection, authkey: bytes, who: str) -> None:
    client_nonce = _read_hello(conn, who)
    server_nonce = os.urandom(_NONCE_BYTES)
    conn.send_bytes(_HELLO + server_nonce)
    proof = _recv_handshake_message(conn) or b""
    if not hmac.compare_digest(proof, _proof(authkey, b"client", client_nonce, server_nonce)):
        conn.send_bytes(_FAILURE)
        raise AuthenticationError(f"authentication failed: {who} does not know the key; connection dropped")
    conn.send_bytes(_WELCOME + _proof(authkey, b"server", client_nonce, server_nonce))


def _client_handshake(conn: _StdConnection, authkey: bytes, who: str, key_source: str) -> None:
    client_nonce = os.urandom(_NONCE_BYTES)
    conn.send_bytes(_HELLO + client_nonce)
    server_nonce = _read_hello(conn, who)
    conn.send_bytes(_proof(authkey, b"client", client_nonce, server_nonce))
    reply = _recv_handshake_message(conn) or b""
    if reply == _FAILURE:
        raise AuthenticationError(f"authentication failed: {who} refused our key ({key_source})")
    if not hmac.compare_digest(reply, _WELCOME + _proof(authkey, b"server", client_nonce, server_nonce)):
        raise AuthenticationError(
            f"authentication failed: {who} does not know our key ({key_source}); connection dropped"
        )


def deliver_challenge(connection: _StdConnection, authkey: bytes) -> None:
    """The server's half of forklift's handshake, on a connection made some other way.

    ``multiprocessing.connection.deliver_challenge`` with forklift's protocol: the peer
    runs :func:`answer_challenge`. Raises :class:`~forklift.AuthenticationError` if the
    peer does not know ``authkey``. No time limit (the caller owns the connection).
    """
    _server_handshake(connection, _checked_authkey(authkey), "the peer")


def answer_challenge(connection: _StdConnection, authkey: bytes) -> None:
    """The client's half of forklift's handshake (the peer runs :func:`deliver_challenge`).

    Raises :class:`~forklift.AuthenticationError` if the peer refuses ``authkey`` or
    cannot prove it knows it.
    """
    _client_handshake(connection, _checked_authkey(authkey), "the peer", "the authkey passed in")


# -- the public API -------------------------------------------------------------------


class RawListener:
    """A bound, listening socket whose ``accept()`` returns the bare socket and peer address.

    The caller runs :func:`server_handshake`: :class:`Listener` at once, forklift's
    manager servers in a thread per connection.
    """

    def __init__(self, address: Any = None, family: str | None = None, backlog: int = 1) -> None:
        family, address = _resolve_address(address, family)
        sock = socket.socket(getattr(socket, family))
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(backlog)
        except BaseException:
            sock.close()
            raise
        self._socket = sock
        self.family = family
        self.address: Any = sock.getsockname()
        self.closed = False
        self._unlink: util.Finalize[None] | None = None
        if family == "AF_UNIX" and address[:1] not in ("\0", b"\0"):  # abstract names need no unlink
            self._unlink = util.Finalize(self, os.unlink, args=(address,), exitpriority=0)

    def accept(self) -> tuple[socket.socket, Any]:
        """Wait for a connection; return its socket (blocking, not yet authenticated) and address."""
        if self.closed:
            raise OSError("listener is closed")
        sock, peer = self._socket.accept()
        sock.setblocking(True)
        return sock, peer

    def close(self) -> None:
        """Stop listening (and remove an AF_UNIX socket file)."""
        if self.closed:
            return
        self.closed = True
        # On Linux close() alone does not wake a thread blocked in accept(); shutdown() does.
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
        if self._unlink is not None:
            self._unlink()


class Listener:
    """``multiprocessing.connection.Listener``, authenticated and bound to 127.0.0.1 by default.

    ``address``: ``(host, port)`` for TCP (host ``''`` or none given: 127.0.0.1;
    ``'0.0.0.0'`` for every interface), a path for AF_UNIX, or None for a fresh AF_UNIX
    socket. ``authkey``: None picks the default key (see the module's docstring).
    ``ssl_context``: a server-side :class:`ssl.SSLContext` to speak TLS.
    ``handshake_timeout``: seconds a new connection gets to authenticate.
    """

    def __init__(
        self,
        address: Any = None,
        family: str | None = None,
        backlog: int = 1,
        authkey: bytes | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
    ) -> None:
        family, address = _resolve_address(address, family)
        self._authkey, _ = _pick_authkey(authkey, family, create=True)
        self._ssl_context = ssl_context
        self._handshake_timeout = handshake_timeout
        self._listener = RawListener(address, family, backlog)
        self._last_accepted: Any = None

    def accept(self) -> Connection:
        """Wait for a client that passes the handshake; return its connection.

        Peers that fail (wrong key, garbage, failed TLS, silence past
        ``handshake_timeout``) are logged on the ``"forklift"`` logger and skipped.
        """
        while True:
            sock, peer = self._listener.accept()
            try:
                conn = server_handshake(sock, peer, self._authkey, self._ssl_context, self._handshake_timeout)
            except AuthenticationError as exc:
                _log.warning("listener at %s: %s", describe_address(self.address), exc)
                continue
            self._last_accepted = peer
            return conn

    def close(self) -> None:
        """Stop listening."""
        self._listener.close()

    @property
    def address(self) -> Any:
        """The address listened on (with the port chosen when 0 was asked for)."""
        return self._listener.address

    @property
    def last_accepted(self) -> Any:
        """The address of the last client accepted, or None."""
        return self._last_accepted

    def __enter__(self) -> Listener:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def Client(
    address: Any,
    family: str | None = None,
    authkey: bytes | None = None,
    *,
    ssl_context: ssl.SSLContext | None = None,
    handshake_timeout: float | None = HANDSHAKE_TIMEOUT,
) -> Connection:
    """Connect to a :class:`Listener` and authenticate; ``multiprocessing.connection.Client``.

    ``authkey`` None picks the default key (see the module's docstring); ``ssl_context``
    is a client-side :class:`ssl.SSLContext` (the server's host name is checked against
    the address's host if the context checks host names). The handshake needs the server
    in ``accept()``, as the standard library's does when given an authkey: a Client made
    before ``accept()`` in the thread that is to call it would wait for ever.
    ``handshake_timeout`` (seconds from the connect; None: no limit) bounds the wait.
    Raises :class:`~forklift.AuthenticationError` if the handshake fails, saying why.
    """
    family, address = _check_address(address, family)
    authkey, key_source = _pick_authkey(authkey, family, create=False)
    sock = socket.socket(getattr(socket, family))
    try:
        sock.connect(address)
    except OSError as exc:  # the same type and errno; the message names the address
        sock.close()
        message = f"cannot connect to {describe_address(address)}: {exc.strerror or exc}"
        raise (type(exc)(exc.errno, message) if exc.errno is not None else type(exc)(message)) from None
    except BaseException:
        sock.close()
        raise
    conn = Connection(sock)
    who = f"the server at {describe_address(address)}"
    hints = _Hints(eof="" if ssl_context else " (if it speaks TLS, pass ssl_context=)", timeout=_NOT_ACCEPTED)
    with _handshaking(conn, who, handshake_timeout, hints):
        if ssl_context is not None:
            host = address[0] if family == "AF_INET" else None
            conn._start_tls(ssl_context, server_side=False, server_hostname=host)
        _client_handshake(conn, authkey, who, key_source)
    return conn


# -- the xmlrpclib serializer (managers' serializer='xmlrpclib') --------------------------

#: ``multiprocessing.connection.ConnectionWrapper``: a connection whose send() and recv()
#: go through other functions than pickle's.
ConnectionWrapper: Any = mpc.ConnectionWrapper  # type: ignore[attr-defined]


def _xml_dumps(obj: Any) -> bytes:
    import xmlrpc.client

    return xmlrpc.client.dumps((obj,), None, None, None, True).encode("utf-8")


def _xml_loads(data: bytes) -> Any:
    import xmlrpc.client

    (obj,), _ = xmlrpc.client.loads(data.decode("utf-8"))
    return obj


def wrap_xmlrpc(conn: Any) -> Any:
    """``conn`` with send() and recv() in XML-RPC's format instead of pickle's.

    Only None, bools, 32-bit ints, floats, strings, bytes (received as
    ``xmlrpc.client.Binary``), datetimes, lists (tuples arrive as lists) and dicts with
    string keys travel, and receiving them runs no code of the sender's.
    """
    return ConnectionWrapper(conn, _xml_dumps, _xml_loads)


class XmlListener(Listener):
    """A :class:`Listener` whose connections send and receive XML-RPC (``wrap_xmlrpc``)."""

    def accept(self) -> Any:
        """Wait for a client that passes the handshake; its connection, speaking XML-RPC."""
        return wrap_xmlrpc(super().accept())


def XmlClient(*args: Any, **kwargs: Any) -> Any:
    """:func:`Client`'s connection (the same arguments), speaking XML-RPC (``wrap_xmlrpc``)."""
    return wrap_xmlrpc(Client(*args, **kwargs))
