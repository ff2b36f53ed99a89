"""Faults while pickling or unpickling, on each side (after CPython's test_deadlock.py).

Each fault becomes an error for its task only, and the pool goes on.
"""

from multiprocessing.pool import MaybeEncodingError

import pytest

import forklift
from forklift.errors import (
    ResultSerializationError as RESULT_ERROR,
)  # also SerializationError, MaybeEncodingError

import tasks

# (where, what is sent or made, expected error, words in the message)
MATRIX = [
    ("args pickled in parent", "ErrorAtPickle", forklift.SerializationError, "cannot pickle the arguments"),
    ("args pickled in parent", "ExitAtPickle", forklift.SerializationError, "cannot pickle the arguments"),
    ("args unpickled in worker", "ErrorAtUnpickle", forklift.SerializationError, "unpickle the arguments"),
    ("args unpickled in worker", "ExitAtUnpickle", forklift.SerializationError, "unpickle the arguments"),
    ("args unpickled in worker", "CrashAtUnpickle", forklift.WorkerLostError, "unpickling its arguments"),
    ("result pickled in worker", "ErrorAtPickle", RESULT_ERROR, "cannot pickle the result"),
    ("result pickled in worker", "ExitAtPickle", RESULT_ERROR, "cannot pickle the result"),
    ("result pickled in worker", "CrashAtPickle", forklift.WorkerLostError, "pickling its result"),
    ("result unpickled in parent", "ErrorAtUnpickle", RESULT_ERROR, "unpickle the result"),
    ("result unpickled in parent", "ExitAtUnpickle", RESULT_ERROR, "unpickle the result"),
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
                # what code written for the stdlib catches for a result; an argument is not one
                assert isinstance(exc, MaybeEncodingError) == (error is RESULT_ERROR)
                out.append("err")
        assert out[2] == "err" and out.count("err") == 1
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]


@pytest.mark.parametrize("kind", ["ExitAtReduceError", "ExitAtStrError"])
def test_task_exception_that_raises_systemexit_when_described_is_its_error(start_method, kind, tmp_path):
    """Pickling or describing the task's exception raises SystemExit: the worker lives,
    the caller gets the task's error (never WorkerLostError) and the task runs once."""
    with forklift.Pool(2, start_method=start_method, retries=2) as pool:
        pids = pool.worker_pids()
        with pytest.raises(Exception) as info:
            pool.apply(tasks.raise_named, (kind, str(tmp_path)))
        assert not isinstance(info.value, forklift.WorkerLostError), info.value
        if kind == "ExitAtReduceError":
            assert isinstance(info.value, forklift.RemoteError)
            assert info.value.type_name == "tasks.ExitAtReduceError"
            assert "from the task" in info.value.message
        else:
            assert type(info.value).__name__ == kind
        assert len(list(tmp_path.iterdir())) == 1  # ran once: no retry repeated its side effects
        assert pool.worker_pids() == pids
        assert pool.statistics().workers_lost == 0
