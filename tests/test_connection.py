"""forklift.connection: the stdlib API, authenticated, loopback by default, TLS optional.

A Listener serves in a thread of the test process; clients are real sockets on
127.0.0.1 (or AF_UNIX). Bad peers are raw sockets.
"""

import contextlib
import logging
import os
import shutil
import socket
import ssl
import stat
import struct
import subprocess
import sys
import threading
import time
from collections import namedtuple

import pytest

import forklift
from forklift.connection import Client, Listener, authkey_path, load_authkey, wait

KEY = b"secret key"

TLS = namedtuple("TLS", "server client")


def make_tls_contexts(directory):
    """A self-signed certificate for 127.0.0.1, and the server and client contexts using it."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = str(directory / "cert.pem"), str(directory / "key.pem")
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        ],
        check=True,
        capture_output=True,
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    return TLS(server, ssl.create_default_context(cafile=cert))


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_tls_contexts(tmp_path_factory.mktemp("tls"))


def _echo_forever(listener):
    while True:
        try:
            conn = listener.accept()
        except OSError:  # the listener was closed
            return
        with conn, contextlib.suppress(EOFError, OSError):
            while True:
                conn.send_bytes(conn.recv_bytes())


@pytest.fixture
def echo_server():
    """start(**listener_kwargs) -> a Listener echoing in a thread, closed after the test."""
    started = []

    def start(address=("127.0.0.1", 0), **kwargs):
        kwargs.setdefault("authkey", KEY)
        listener = Listener(address, **kwargs)
        thread = threading.Thread(target=_echo_forever, args=(listener,), daemon=True)
        thread.start()
        started.append((listener, thread))
        return listener

    yield start
    for listener, thread in started:
        listener.close()
        thread.join(10)


def _echo(address, **kwargs):
    kwargs.setdefault("authkey", KEY)
    with Client(address, **kwargs) as conn:
        conn.send_bytes(b"ping")
        return conn.recv_bytes()


def _silent_peer(address):
    return socket.create_connection(address)


def _dropped(peer):
    try:
        return peer.recv(100) == b""
    except ConnectionResetError:  # the server closed with our bytes unread
        return True


# -- the API ------------------------------------------------------------------------


def test_objects_and_bytes_round_trip_with_the_stdlib_api():
    with Listener(("127.0.0.1", 0), authkey=KEY) as listener:
        got = {}

        def serve():
            with listener.accept() as conn:
                got["obj"] = conn.recv()
                buf = bytearray(10)
                got["n"] = conn.recv_bytes_into(buf)
                got["buf"] = bytes(buf)
                conn.send({"answer": 42})

        server = threading.Thread(target=serve)
        server.start()
        with Client(listener.address, authkey=KEY) as conn:
            conn.send(["hello", 1, None])
            conn.send_bytes(b"0123456789abc", 3, 4)
            assert conn.poll(5)
            assert conn.recv() == {"answer": 42}
            assert isinstance(conn, forklift.connection.Connection)
        server.join(5)
        assert got == {"obj": ["hello", 1, None], "n": 4, "buf": b"3456" + bytes(6)}
        assert listener.last_accepted[0] == "127.0.0.1"
    assert conn.closed


def test_big_message_round_trips(echo_server):
    listener = echo_server()
    with Client(listener.address, authkey=KEY) as conn:
        payload = os.urandom(3 << 20)
        conn.send_bytes(payload)
        assert conn.recv_bytes() == payload


def test_empty_host_binds_loopback_not_every_interface():
    with Listener(("", 0), authkey=KEY) as listener:
        assert listener.address[0] == "127.0.0.1"
    with Listener(("0.0.0.0", 0), authkey=KEY) as listener:
        assert listener.address[0] == "0.0.0.0"


def test_af_unix_without_key_uses_this_process_authkey(echo_server):
    listener = echo_server(None, authkey=None)
    assert isinstance(listener.address, str)
    assert _echo(listener.address, authkey=None) == b"ping"
    with pytest.raises(forklift.AuthenticationError, match="refused our key"):
        _echo(listener.address, authkey=b"not the process key")


def test_empty_or_str_authkey_is_refused():
    with pytest.raises(ValueError, match="must not be empty"):
        Listener(("127.0.0.1", 0), authkey=b"")
    with pytest.raises(TypeError):
        Listener(("127.0.0.1", 0), authkey="abc")


def test_wait_returns_ready_connections(echo_server):
    listener = echo_server()
    with Client(listener.address, authkey=KEY) as conn:
        assert wait([conn], 0) == []
        conn.send_bytes(b"x")
        assert wait([conn], 5) == [conn]


def test_the_public_names_of_multiprocessing_connection():
    import multiprocessing.connection as mpc

    from forklift import connection

    assert set(mpc.__all__) <= set(connection.__all__)
    assert connection.families == ["AF_INET", "AF_UNIX"] and connection.default_family == "AF_UNIX"
    assert connection.BufferTooShort is mpc.BufferTooShort
    assert issubclass(connection.AuthenticationError, mpc.AuthenticationError)
    # The standard library's own protocol and its plumbing (forklift's handshake replaces
    # CHALLENGE/WELCOME/FAILURE/MESSAGE_LENGTH; RawListener is its SocketListener).
    internals = {"BUFSIZE", "CHALLENGE", "CONNECTION_TIMEOUT", "FAILURE", "MESSAGE_LENGTH", "WELCOME"}
    internals |= {"SocketClient", "SocketListener", "rebuild_connection", "reduce_connection"}
    public = {name for name, obj in vars(mpc).items() if not name.startswith("_")}
    public -= {name for name, obj in vars(mpc).items() if isinstance(obj, type(mpc))}  # imported modules
    assert sorted(public - internals - set(connection.__all__)) == []
    for name in connection.__all__:
        assert getattr(connection, name) is not None


def test_pipe_is_forklifts_whose_ends_go_to_pool_tasks(pool):
    from forklift import connection

    import primitive_tasks as pt

    reader, writer = connection.Pipe(duplex=False)
    assert (reader.writable, writer.readable) == (False, False)
    assert pool.apply(pt.send, (writer, "through a pickled end"))  # a stdlib end would not pickle
    assert reader.recv() == "through a pickled end"
    here, there = connection.Pipe()
    there.send(1)
    assert here.recv() == 1


@pytest.mark.parametrize("family", [None, "AF_UNIX", "AF_INET"])
def test_client_with_no_address_is_a_value_error_as_in_the_standard_library(family):
    # It used to dial a fresh random AF_UNIX path: FileNotFoundError.
    with pytest.raises(ValueError, match="address type of None unrecognized"):
        Client(None, family=family, authkey=KEY)


@pytest.mark.parametrize(
    ("address", "family", "error", "message"),
    [
        (
            ("127.0.0.1",),
            None,
            TypeError,
            r"an AF_INET address is a pair \(host, port\), not \('127.0.0.1',\)",
        ),
        ("/tmp/x.sock", "AF_INET", TypeError, "an AF_INET address is a pair"),
        (("127.0.0.1", 1), "AF_UNIX", TypeError, r"an AF_UNIX address is a path \(str, or bytes\)"),
        (["127.0.0.1", 1], None, TypeError, "address type of .* unrecognized"),
        (42, None, TypeError, "address type of 42 unrecognized"),
        ("/tmp/x.sock", "AF_PIPE", ValueError, "family 'AF_PIPE' is not supported"),
    ],
)
def test_bad_addresses_say_what_is_wrong(address, family, error, message):
    for make in (Client, Listener):
        with pytest.raises(error, match=message):
            make(address, family=family, authkey=KEY)


def test_listener_with_an_empty_path_gets_a_fresh_one_as_in_the_standard_library():
    # It used to bind Linux's autobind name and, at exit, fail to unlink '' (a traceback).
    code = (
        "from forklift.connection import Listener\n"
        "l = Listener('', authkey=b'k')\n"
        "print(type(l.address).__name__, l.address.startswith('/'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (out.stdout, out.stderr) == ("str True\n", "")


def test_deliver_and_answer_challenge_authenticate_a_pipe():
    from forklift.connection import Pipe, answer_challenge, deliver_challenge

    def server(conn, key, failures):
        try:
            deliver_challenge(conn, key)
        except forklift.AuthenticationError as exc:
            failures.append(exc)

    for server_key, ok in ((KEY, True), (b"another key", False)):
        a, b = Pipe()
        failures = []
        thread = threading.Thread(target=server, args=(a, server_key, failures))
        thread.start()
        if ok:
            answer_challenge(b, KEY)
        else:
            with pytest.raises(forklift.AuthenticationError, match="refused our key"):
                answer_challenge(b, KEY)
        thread.join(10)
        assert [str(e) for e in failures] == (
            [] if ok else ["authentication failed: the peer does not know the key; connection dropped"]
        )


def test_xml_listener_and_client_speak_xmlrpc_after_the_handshake():
    from forklift.connection import XmlClient, XmlListener

    with XmlListener(authkey=KEY) as listener:

        def echo():
            conn = listener.accept()
            conn.send(conn.recv())
            conn.close()

        thread = threading.Thread(target=echo)
        thread.start()
        conn = XmlClient(listener.address, authkey=KEY)
        with pytest.raises(TypeError, match="cannot marshal"):
            conn.send(object())  # only plain values travel
        conn.send({"a": (1, "two", None)})
        assert conn.recv() == {"a": [1, "two", None]}
        conn.close()
        thread.join(10)


# -- authentication -----------------------------------------------------------------


def test_wrong_key_is_refused_on_both_sides_and_the_server_goes_on(echo_server, caplog):
    listener = echo_server()
    with pytest.raises(forklift.AuthenticationError) as info:
        _echo(listener.address, authkey=b"wrong")
    port = listener.address[1]
    assert str(info.value).startswith(
        f"authentication failed: the server at 127.0.0.1:{port} refused our key"
    )
    assert isinstance(info.value, forklift.ForkliftError)
    assert _echo(listener.address) == b"ping"
    assert any("does not know the key" in r.getMessage() for r in caplog.records if r.name == "forklift")


def test_client_does_not_trust_a_server_that_cannot_prove_the_key():
    # A server that answers the hello but does not know the key: the client must not
    # send it anything (mutual authentication).
    from forklift import connection as fc

    with socket.create_server(("127.0.0.1", 0)) as impostor:

        def pretend():
            sock, _ = impostor.accept()
            with fc.Connection(sock) as conn:
                conn.recv_bytes()
                conn.send_bytes(fc._HELLO + os.urandom(32))
                conn.recv_bytes()
                conn.send_bytes(fc._WELCOME + bytes(32))
                with contextlib.suppress(EOFError, OSError):
                    conn.recv_bytes()

        thread = threading.Thread(target=pretend)
        thread.start()
        with pytest.raises(forklift.AuthenticationError, match="does not know our key"):
            Client(impostor.getsockname(), authkey=KEY)
        thread.join(5)


def test_silent_peer_times_out_and_the_next_client_is_served(echo_server, caplog):
    listener = echo_server(handshake_timeout=0.3)
    with _silent_peer(listener.address):
        start = time.monotonic()
        assert _echo(listener.address) == b"ping"
        assert time.monotonic() - start < 3
    assert any("did not finish the handshake within 0.3 s" in r.getMessage() for r in caplog.records)


def test_peer_stopping_mid_message_times_out(echo_server, caplog):
    listener = echo_server(handshake_timeout=0.3)
    with _silent_peer(listener.address) as peer:
        peer.sendall(struct.pack("!i", 56) + b"#FORKLIFT")
        assert _echo(listener.address) == b"ping"
    assert any("did not finish the handshake" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "garbage",
    [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", struct.pack("!i", -7) + b"x", struct.pack("!i", 4) + b"evil"],
    ids=["http", "negative-length", "not-a-hello"],
)
def test_garbage_is_dropped_at_once(echo_server, caplog, garbage):
    listener = echo_server(handshake_timeout=30)  # a timeout here would fail the test
    with _silent_peer(listener.address) as peer:
        peer.sendall(garbage)
        assert _dropped(peer)  # at once, without waiting for the timeout
        assert _echo(listener.address) == b"ping"
    assert any("does not speak forklift's protocol" in r.getMessage() for r in caplog.records)


def test_nobody_listening_keeps_the_error_type_and_names_the_address(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(
        ConnectionRefusedError, match=f"cannot connect to 127.0.0.1:{port}: Connection refused"
    ):
        Client(("127.0.0.1", port), authkey=b"k")
    with pytest.raises(FileNotFoundError, match=r"cannot connect to .*nowhere\.sock") as info:
        Client(str(tmp_path / "nowhere.sock"), authkey=b"k")
    assert info.value.errno == 2


def test_client_handshake_timeout_against_a_silent_server():
    with (
        socket.create_server(("127.0.0.1", 0)) as silent,
        pytest.raises(forklift.AuthenticationError, match=r"did not finish the handshake within 0\.2 s"),
    ):
        Client(silent.getsockname(), authkey=KEY, handshake_timeout=0.2)


def test_stdlib_client_is_refused(echo_server):
    import multiprocessing.connection as mpc

    listener = echo_server(handshake_timeout=0.3)
    with pytest.raises((EOFError, OSError, mpc.AuthenticationError)):
        mpc.Client(listener.address, authkey=KEY)
    assert _echo(listener.address) == b"ping"


def test_a_client_before_accept_in_the_same_thread_times_out_saying_why():
    # The handshake needs the server in accept(); the standard library with an authkey
    # waits for ever here. The thread is a backstop: before the fix it never ended.
    from forklift.connection import HANDSHAKE_TIMEOUT

    outcome = []
    with Listener(authkey=KEY) as listener:

        def client_first():
            try:
                Client(listener.address, authkey=KEY)
            except Exception as exc:
                outcome.append(exc)

        thread = threading.Thread(target=client_first, daemon=True)
        start = time.monotonic()
        thread.start()
        thread.join(HANDSHAKE_TIMEOUT + 10)
        assert not thread.is_alive(), "Client() is still waiting for accept()"
    assert HANDSHAKE_TIMEOUT - 0.5 < time.monotonic() - start < HANDSHAKE_TIMEOUT + 10
    (exc,) = outcome
    assert isinstance(exc, forklift.AuthenticationError)
    assert f"did not finish the handshake within {HANDSHAKE_TIMEOUT} s" in str(exc)
    assert "a Client made before accept() in the thread that is to call it waits for ever" in str(exc)


# -- the key file -------------------------------------------------------------------


@pytest.fixture
def key_file(tmp_path, monkeypatch):
    path = tmp_path / "config" / "authkey"
    monkeypatch.setenv("FORKLIFT_AUTHKEY_FILE", str(path))
    return path


def test_tcp_listener_without_key_creates_a_private_key_file(echo_server, key_file):
    listener = echo_server(authkey=None)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_bytes().strip()
    assert len(key) == 64 and int(key, 16) >= 0  # 32 random bytes, in hex
    assert load_authkey() == key
    assert _echo(listener.address, authkey=None) == b"ping"  # the client reads the same file
    assert _echo(listener.address, authkey=key) == b"ping"
    echo_server(authkey=None)  # a second server reuses the key
    assert key_file.read_bytes().strip() == key


def test_key_file_open_to_others_is_refused(key_file):
    key_file.parent.mkdir()
    key_file.write_text("abc\n")
    key_file.chmod(0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        Listener(("127.0.0.1", 0))


def test_client_without_key_or_key_file_says_what_to_do(key_file):
    with pytest.raises(FileNotFoundError, match="pass authkey="):
        Client(("127.0.0.1", 1))


def test_authkey_path_rules(monkeypatch, tmp_path):
    monkeypatch.delenv("FORKLIFT_AUTHKEY_FILE", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert authkey_path() == tmp_path / "forklift" / "authkey"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert authkey_path() == tmp_path / "home" / ".config" / "forklift" / "authkey"
    monkeypatch.setenv("FORKLIFT_AUTHKEY_FILE", str(tmp_path / "k"))
    assert authkey_path() == tmp_path / "k"


# -- TLS ----------------------------------------------------------------------------


def test_tls_round_trip(echo_server, tls):
    listener = echo_server(ssl_context=tls.server)
    with Client(listener.address, authkey=KEY, ssl_context=tls.client) as conn:
        assert isinstance(conn._sock, ssl.SSLSocket)
        payload = os.urandom(1 << 20)
        conn.send(payload)
        assert conn.recv() == payload


def test_plain_client_is_refused_by_a_tls_server(echo_server, tls, caplog):
    caplog.set_level(logging.WARNING, logger="forklift")
    listener = echo_server(ssl_context=tls.server)
    with pytest.raises(forklift.AuthenticationError, match=r"closed the connection.*pass ssl_context="):
        _echo(listener.address)
    assert _echo(listener.address, ssl_context=tls.client) == b"ping"
    assert any("TLS handshake with the client" in r.getMessage() for r in caplog.records)


def test_tls_client_is_refused_by_a_plain_server(echo_server, tls):
    listener = echo_server()
    with pytest.raises(forklift.AuthenticationError, match=r"the server at 127\.0\.0\.1"):
        _echo(listener.address, ssl_context=tls.client)
    assert _echo(listener.address) == b"ping"


def test_tls_client_checks_the_server_certificate(echo_server, tls, tmp_path):
    other = make_tls_contexts(tmp_path)  # a certificate the client does not trust
    listener = echo_server(ssl_context=other.server)
    with pytest.raises(
        forklift.AuthenticationError, match=r"TLS handshake .* failed: CERTIFICATE_VERIFY_FAILED"
    ):
        _echo(listener.address, ssl_context=tls.client)


def test_poll_sees_data_decrypted_but_not_yet_read(tls):
    # Two messages in one TLS record: after the first is read, the second sits in the
    # SSL object's buffer, where select() on the socket cannot see it.
    with Listener(("127.0.0.1", 0), authkey=KEY, ssl_context=tls.server) as listener:
        server = threading.Thread(target=lambda: _send_two_in_one_record(listener))
        server.start()
        with Client(listener.address, authkey=KEY, ssl_context=tls.client) as conn:
            assert conn.recv_bytes() == b"one"
            assert conn.poll(0)
            assert wait([conn], 0) == [conn]
            assert conn.recv_bytes() == b"two"
            conn.send_bytes(b"done")
        server.join(5)


def _send_two_in_one_record(listener):
    with listener.accept() as conn:
        conn._send(struct.pack("!i", 3) + b"one" + struct.pack("!i", 3) + b"two")
        conn.recv_bytes()
