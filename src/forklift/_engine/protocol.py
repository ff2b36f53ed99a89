"""The wire protocol between the scheduler and one worker, shared by both sides.

A message is one header frame (a small pickled tuple ``(kind, has_payload,
fields)``) optionally followed by one payload frame (already-pickled bytes),
both sent with ``Connection.send_bytes`` over the worker's own duplex pipe.
Keeping the payload a separate, pre-pickled frame means a payload that fails
to pickle or unpickle is pinned to its chunk, never to the channel.

Parent -> worker
    TASK   (seq, func_id, func_blob | None, forget_ids, call_mode, timed, bulk)  + args blob
    EXIT   ()                                  finish and exit with code 0
    RELEASE (seq, mapped)                      done with chunk seq's result segments; if mapped,
                                               the caller holds them until FREE
    FREE   (token,)                            that result segment is no longer mapped: reuse it
Worker -> parent
    RESULT (seq, elapsed_s, rss_bytes, kept, bulk, began)  + blob of (results, errors | None)
                                               began: the worker's time.time() when it started
                                               the chunk (for the journal)
    READY  (pid,)                              the initializer ran; tasks may follow
    BADARGS (seq, "function" | "arguments", error_record)   would not unpickle
    INITFAIL (error_record,)                   the pool's initializer raised
    LOG    (seq, item, record_fields)          a logging record (logs.py); seq -1: outside a
                                               chunk (the initializer), item -1: between items

``bulk`` lists the shared memory segments holding the blob's out-of-band
buffers (see bulk.py); ``kept``: the task still refers to its argument segments.

The *slot* is a small shared int64 array per worker that the worker writes and
the parent reads, so the parent always knows what a worker is doing without a
message (and even after it died):
    SLOT_SEQ    seq of the chunk the worker is on
    SLOT_IDX    >= 0: running item IDX (exact only in timed chunks, else 0);
                PHASE_FUNCTION / PHASE_UNPICKLE / PHASE_PICKLE / PHASE_IDLE otherwise
    SLOT_START  time.monotonic_ns() when the current item or phase started (timed
                chunks only; unpickling the arguments and pickling the results are
                timed like an item; loading a function new to the worker, which
                imports its module, is bounded like start-up: init_timeout)
    SLOT_NOTE   why the worker is ending itself, written just before it does:
                NOTE_SERVER_GONE (its fork server died, the pool did not: nobody
                could see its exit any more), NOTE_PARENT_GONE (the pool died)
The worker writes START, then IDX, then (at a chunk's start) SEQ, so a reader
that sees a value also sees those written before it.
"""

from __future__ import annotations

import pickle
from multiprocessing.connection import Connection
from typing import Any

TASK, EXIT, RESULT, BADARGS, INITFAIL, READY, RELEASE, FREE, LOG = range(9)

# How a chunk's items are called.
CALL_ONE, CALL_STAR, CALL_ARGS_KWARGS = range(3)

SLOT_SEQ, SLOT_IDX, SLOT_START, SLOT_NOTE, SLOT_SIZE = 0, 1, 2, 3, 4
PHASE_UNPICKLE, PHASE_PICKLE, PHASE_IDLE, PHASE_FUNCTION = -1, -2, -3, -4
NOTE_SERVER_GONE, NOTE_PARENT_GONE = 1, 2

# A worker's exit status when, importing the main module again as it starts (spawn,
# forkserver), it was asked to start a pool: the script has no __main__ guard.
EXIT_NO_MAIN_GUARD = 86


def send(conn: Connection, kind: int, fields: tuple[Any, ...] = (), payload: bytes | None = None) -> None:
    conn.send_bytes(pickle.dumps((kind, payload is not None, fields), pickle.HIGHEST_PROTOCOL))
    if payload is not None:
        conn.send_bytes(payload)


def recv(conn: Connection) -> tuple[int, tuple[Any, ...], bytes | None]:
    kind, has_payload, fields = pickle.loads(conn.recv_bytes())
    payload = conn.recv_bytes() if has_payload else None
    return kind, fields, payload
