"""Tutorial: Listener/Client (a server tells a client it is alive, over a socket).

forklift.connection.Listener / Client are the multiprocessing.connection API,
secure by default:

- host ``''`` (the tutorial's ``('', 6060)``) binds 127.0.0.1, not every
  interface; listening on all of them takes an explicit ``'0.0.0.0'``;
- every connection is authenticated (no authkey: a per-user key file for TCP),
  and both sides prove the key before anything is unpickled;
- a client with a wrong key gets forklift.AuthenticationError saying why, while
  the server logs a warning and keeps accepting: one bad peer cannot stop it.

The clients run as forklift.Process and return what they got.
"""

# Fixes to the tutorial's code:
# - a guessable key (b'leili') and a fixed port: a random key and a free port here;
# - server and client looped forever (3 s apart): three messages, then the server
#   closes the connection and the client stops at EOFError;
# - listener.last_accepted holds the client's port: only its host is printed;
# - the hard-coded client address 10.2.1.2 is the listener's own address.

import logging
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import forklift
from forklift.connection import Client, Listener


def client(address: tuple[str, int], authkey: bytes) -> list:
    try:
        with Client(address, authkey=authkey) as conn:
            received = []
            while True:
                try:
                    received.append(conn.recv())
                except EOFError:  # the server closed the connection
                    return received
    except forklift.AuthenticationError:
        return ["refused: AuthenticationError"]


def start_client(address: tuple[str, int], authkey: bytes):
    p = forklift.Process(target=client, args=(address, authkey))
    p.start()
    return p


def main() -> None:
    logging.basicConfig(format="server log: %(message)s")  # where the server's warning goes
    authkey = secrets.token_bytes(16)
    with Listener(("", 0), authkey=authkey) as listener:
        print(f"listening on {listener.address[0]}")
        good = start_client(listener.address, authkey)
        with listener.accept() as conn:
            print("connection accepted from", listener.last_accepted[0])
            for i in range(3):
                conn.send(("server is alive", i))
                time.sleep(0.05)
        print(f"client received: {good.result(timeout=10)}")

        with ThreadPoolExecutor(1) as server:
            accepted = server.submit(listener.accept)  # the server waits for a client
            bad = start_client(listener.address, b"wrong key")
            print(f"client with a wrong key got: {bad.result(timeout=10)}")
            late = start_client(listener.address, authkey)
            with accepted.result(timeout=10) as conn:  # the bad client was skipped
                conn.send("welcome")
            print(f"the next client got: {late.result(timeout=10)}")


if __name__ == "__main__":
    main()
