"""Tutorial: 进程间通信 > Pipe (first example: a child sends one message through a Pipe).

forklift.Pipe and forklift.Process as in multiprocessing: Pipe() returns two
connected Connection objects with send() / recv().
"""

# Fixes to the tutorial's code:
# - "from multiprocessing import process, Pipe" -> Process (the lower-case module
#   was imported and Process was undefined: a NameError);
# - recv() before join(): a large message does not fit the pipe's buffer and the
#   child would wait in send() while the parent waits in join() (a deadlock);
#   the parent also closes its copy of the child's end.

import forklift


def f(conn) -> None:
    conn.send("hello world")
    conn.close()


def main() -> None:
    parent_conn, child_conn = forklift.Pipe()
    p = forklift.Process(target=f, args=(child_conn,))
    p.start()
    child_conn.close()  # only the child uses this end now
    print(parent_conn.recv())
    p.join()
    parent_conn.close()


if __name__ == "__main__":
    main()
