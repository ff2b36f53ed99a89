"""Tutorial: Manager > 跨网络共享数据 (multiprocessing_client1.py and client2.py).

Connects to the QueueManager served by manager_server.py: ``put`` stores three
messages in the shared queue (client1), ``get`` reads them back (client2). The
address and key come from EXAMPLE_MANAGER_ADDRESS ("host:port") and
EXAMPLE_MANAGER_AUTHKEY (hex), as manager_server.py sets them. Run alone, this
script starts ``manager_server.py --serve`` itself, then does both.

forklift.managers.BaseManager: the stdlib client API; connect() with a wrong
key raises forklift.AuthenticationError.
"""

# Fixes to the tutorial's code:
# - client1 called q.put() with no item (a TypeError): it puts "message 0..2";
# - client2 called print(q.put()) where it meant print(q.get()); get() has a
#   timeout so a missing message cannot hang it;
# - the hard-coded server address 10.2.1.2 and key come from the environment;
# - the unused "from queue import Queue" is gone.

import os
import secrets
import subprocess
import sys

import forklift
from forklift.managers import BaseManager

ADDRESS_ENV = "EXAMPLE_MANAGER_ADDRESS"
AUTHKEY_ENV = "EXAMPLE_MANAGER_AUTHKEY"
SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "manager_server.py")


class QueueManager(BaseManager):
    pass


QueueManager.register("get_queue")  # only the name: the server holds the queue


def connect(address: tuple[str, int], authkey: bytes):
    m = QueueManager(address=address, authkey=authkey)
    m.connect()
    return m.get_queue()


def put_messages(q) -> None:
    for i in range(3):
        q.put(f"message {i}")
        print(f"put message {i}")


def get_messages(q) -> None:
    for _ in range(3):
        print(f"got {q.get(timeout=5)}")


def standalone() -> None:
    """Start the server side, then act as both tutorial clients."""
    authkey = secrets.token_bytes(16)
    server = subprocess.Popen(
        [sys.executable, SERVER, "--serve"],
        env=dict(os.environ, **{AUTHKEY_ENV: authkey.hex()}),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        _, host, port = server.stdout.readline().split()
        address = (host, int(port))
        q = connect(address, authkey)
        put_messages(q)
        get_messages(q)
        try:
            connect(address, b"wrong key")
        except forklift.AuthenticationError:
            print("a wrong authkey is refused: AuthenticationError")
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    if ADDRESS_ENV not in os.environ:
        standalone()
        return
    host, port = os.environ[ADDRESS_ENV].rsplit(":", 1)
    q = connect((host, int(port)), bytes.fromhex(os.environ[AUTHKEY_ENV]))
    {"put": put_messages, "get": get_messages}[sys.argv[1]](q)


if __name__ == "__main__":
    main()
