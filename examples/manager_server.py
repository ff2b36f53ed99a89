"""Tutorial: Manager > 跨网络共享数据 (multiprocessing_server.py: a queue served over the network).

The server side of the tutorial's QueueManager with ``get_queue``; the two
client programs are manager_client.py. Run alone, this script serves in a
thread and runs manager_client.py twice as a subprocess (first "put", then
"get"), so it shows the whole exchange on one machine.

forklift.managers.BaseManager is the stdlib API with safer defaults: bind to
127.0.0.1 unless told otherwise, and authenticate every connection before
anything is unpickled (with a per-user key file when no authkey is given). The key is
random here and reaches the clients through their environment, not the command
line (which every user of the machine can read in ``ps``).

``python manager_server.py --serve`` only serves: it prints ``ADDRESS host port``
and serves until killed (manager_client.py uses that when run alone). Give the
key in EXAMPLE_MANAGER_AUTHKEY (hex).
"""

# Fixes to the tutorial's code:
# - address ('', 30030) listened on every interface with a guessable key
#   (b'leili'): anyone who can reach the port and guess it can run code in the
#   server (managers unpickle what they receive). 127.0.0.1, a free port and a random key here;
# - the server code ran at import time (no main guard);
# - register(..., callable=lambda: q) -> a module-level function, which also works
#   when the manager runs in a child started by spawn/forkserver (manager.start()).

import os
import queue
import secrets
import subprocess
import sys
import threading

from forklift.managers import BaseManager

ADDRESS_ENV = "EXAMPLE_MANAGER_ADDRESS"  # "host:port"
AUTHKEY_ENV = "EXAMPLE_MANAGER_AUTHKEY"  # hex
CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "manager_client.py")

q: queue.Queue = queue.Queue()


def get_queue() -> queue.Queue:
    return q


class QueueManager(BaseManager):
    pass


QueueManager.register("get_queue", callable=get_queue)


def make_server(authkey: bytes):
    m = QueueManager(address=("127.0.0.1", 0), authkey=authkey)  # port 0: any free port
    return m.get_server()


def serve_only() -> None:
    server = make_server(bytes.fromhex(os.environ[AUTHKEY_ENV]))
    host, port = server.address
    print(f"ADDRESS {host} {port}", flush=True)
    server.serve_forever()


def run_client(mode: str, address: tuple[str, int], authkey: bytes) -> list[str]:
    env = dict(os.environ, **{ADDRESS_ENV: f"{address[0]}:{address[1]}", AUTHKEY_ENV: authkey.hex()})
    done = subprocess.run(
        [sys.executable, CLIENT, mode], env=env, capture_output=True, text=True, timeout=30, check=True
    )
    return done.stdout.splitlines()


def main() -> None:
    if "--serve" in sys.argv:
        serve_only()
        return
    authkey = secrets.token_bytes(16)
    server = make_server(authkey)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("server: serving get_queue on 127.0.0.1")
    for mode in ("put", "get"):
        for line in run_client(mode, server.address, authkey):
            print(f"client {mode}| {line}")
    print(f"server: queue empty at the end: {q.empty()}")


if __name__ == "__main__":
    main()
