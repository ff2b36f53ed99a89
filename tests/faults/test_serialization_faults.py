"""Faults while pickling or unpickling, on each side (after CPython's test_deadlock.py).

Each fault becomes an error for its task only, and the pool goes on.
"""

import pytest

import forklift

import tasks

# (where, what is sent or made, expected error, words in the message)
MATRIX = [
    ("args pickled in parent", "ErrorAtPickle", forklift.SerializationError, "cannot pickle the arguments"),
    ("args pickled in parent", "ExitAtPickle", forklift.SerializationError, "cannot pickle the arguments"),
    ("args unpickled in worker", "ErrorAtUnpickle", forklift.SerializationError, "unpickle the arguments"),
    ("args unpickled in worker", "ExitAtUnpickle", forklift.SerializationError, "unpickle the arguments"),
    ("args unpickled in worker", "CrashAtUnpickle", forklift.WorkerLostError, "unpickling its arguments"),
    ("result pickled in worker", "ErrorAtPickle", forklift.SerializationError, "cannot pickle the result"),
    ("result pickled in worker", "ExitAtPickle", forklift.SerializationError, "cannot pickle the result"),
    ("result pickled in worker", "CrashAtPickle", forklift.WorkerLostError, "pickling its result"),
    ("result unpickled in parent", "ErrorAtUnpickle", forklift.SerializationError, "unpickle the result"),
    ("result unpickled in parent", "ExitAtUnpickle", forklift.SerializationError, "unpickle the result"),
]


def _call(pool, where, kind, chunk):
    """Items 0..3, item 2 carries the fault; one chunk of 4 or chunks of 1."""
    if where.startswith("args"):
        items = [1, 2, getattr(tasks, kind)(), 4]
        return pool.imap(tasks.take, items, chunksize=chunk)
    items = ["int", "int", kind, "int"]
    return pool.imap(_make_or_int, items, chunksize=chunk)


def _make_or_int(kind):
    return 0 if kind == "int" else tasks.make(kind)


@pytest.mark.parametrize("chunk", [1, 4])
@pytest.mark.parametrize(("where", "kind", "error", "words"), MATRIX, ids=lambda v: str(v)[:30])
def test_fault_fails_only_its_task(start_method, where, kind, error, words, chunk):
    with forklift.Pool(2, start_method=start_method) as pool:
        it = _call(pool, where, kind, chunk)
        out = []
        for _ in range(4):
            try:
                out.append(next(it))
            except error as exc:
                assert "task 2 of imap" in str(exc) and words in str(exc), str(exc)
                out.append("err")
        assert out[2] == "err" and out.count("err") == 1
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]
