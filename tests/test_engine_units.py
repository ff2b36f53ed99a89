"""Unit tests of the engine's pure parts, with no processes: fast and deterministic.

The Chunker (chunk sizes), a job's input (``Job.take`` / ``Job.requeue``), how a lazy
map reads its input and hands out results (``StreamJob.next_piece``, with a stand-in
for the engine), and the blame decision after a worker's death (``blame.judge``).
"""

import random
import time

import pytest

from forklift import _config
from forklift._cluster import config as cluster_config
from forklift._cluster.engine import ClusterEngine
from forklift._engine import protocol as P
from forklift._engine.blame import Verdict, judge
from forklift._engine.chunker import Chunker
from forklift._engine.jobs import _END, CollectJob, StreamJob, SubmitJob


@pytest.fixture(autouse=True)
def _tunables(monkeypatch):
    """Round numbers, whatever FORKLIFT_* says: sizes below are exact."""
    monkeypatch.setattr(_config, "CHUNK_SECONDS", 0.25)
    monkeypatch.setattr(_config, "CHUNK_BYTES", 1024)
    monkeypatch.setattr(_config, "MAX_CHUNK", 100)  # at most 100 * 50 items when the length is known
    monkeypatch.setattr(_config, "PREFETCH", 2)
    monkeypatch.setattr(_config, "MAX_READ_AHEAD", 200_000)
    monkeypatch.setattr(cluster_config, "CHUNK_SECONDS", 0.5)


def _observed(chunker, observations):
    for kind, items, amount in observations:
        if kind == "time":
            chunker.observe(items, amount)
        else:
            chunker.observe_payload(items, amount)
    return chunker


# 64 items in 0.5 s: 1/128 s an item, so a 0.25 s chunk holds 32 of them.
STEADY = [("time", 64, 0.5)]
FAST = [("time", 10, 0.0)]  # no measurable time: the size is capped, at MAX_CHUNK * 50 = 5000

# -- Chunker -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chunksize", "observations", "size"),
    [
        pytest.param(None, [], 1, id="one item until a duration is known"),
        pytest.param(None, STEADY, 32, id="sized to CHUNK_SECONDS"),
        pytest.param(None, STEADY + STEADY, 32, id="steady measurements keep the size"),
        # decaying sums: 0.7 * 1 s + 0 s over 0.7 * 1 + 100 items: 35.96 items per 0.25 s
        pytest.param(None, [("time", 1, 1.0), ("time", 100, 0.0)], 35, id="an old outlier fades"),
        pytest.param(None, [("time", 1, 2.0)], 1, id="an item longer than the target: one"),
        pytest.param(None, FAST, 5000, id="instant items: MAX_CHUNK * 50"),
        pytest.param(None, [("bytes", 10, 1024)], 1, id="bytes alone do not size"),
        pytest.param(None, [*STEADY, ("bytes", 10, 1024)], 10, id="CHUNK_BYTES bounds the size"),
        pytest.param(None, [("bytes", 10, 1024), *STEADY], 10, id="the byte bound is remembered"),
        pytest.param(None, [*STEADY, ("bytes", 100, 1024)], 32, id="small items: time decides"),
        pytest.param(None, [*FAST, ("bytes", 4, 0)], 4096, id="empty payloads count as one byte"),
        pytest.param(7, [], 7, id="a fixed chunksize"),
        pytest.param(7, [*FAST, ("bytes", 10, 1024)], 7, id="a fixed chunksize ignores measurements"),
    ],
)
def test_chunker_size(chunksize, observations, size):
    assert _observed(Chunker(chunksize), observations).size == size


@pytest.mark.parametrize(
    ("chunksize", "observations", "remaining", "workers", "pending", "size"),
    [
        pytest.param(None, [], 1000, 2, None, 1, id="unmeasured: one"),
        pytest.param(None, STEADY, 1000, 2, None, 32, id="far from the end: the measured size"),
        pytest.param(None, STEADY, 100, 2, None, 25, id="remaining / (2 workers)"),
        pytest.param(None, STEADY, 10, 4, None, 2, id="rounded up"),
        pytest.param(None, STEADY, 1, 4, None, 1, id="the last item"),
        pytest.param(None, STEADY, 0, 4, None, 1, id="never zero"),
        pytest.param(None, FAST, 10**6, 2, 4, 5000, id="known length: no MAX_CHUNK cap, pending ignored"),
        pytest.param(None, FAST, None, 2, None, 100, id="unknown length: MAX_CHUNK"),
        pytest.param(None, FAST, None, 2, 60, 15, id="unknown length: pending / (2 workers)"),
        pytest.param(None, FAST, None, 2, 1000, 100, id="unknown length: still MAX_CHUNK"),
        pytest.param(None, STEADY, None, 2, 1000, 32, id="unknown length: the measured size"),
        pytest.param(None, FAST, None, 3, 0, 1, id="nothing pending: one"),
        pytest.param(7, [], 3, 4, None, 7, id="fixed: not guided"),
        pytest.param(7, [], None, 4, 1, 7, id="fixed: not guided by pending"),
    ],
)
def test_chunker_next_size(chunksize, observations, remaining, workers, pending, size):
    chunker = _observed(Chunker(chunksize), observations)
    assert chunker.next_size(remaining, workers, pending) == size


def test_chunker_expected_and_what_it_hands_the_next_call():
    chunker = Chunker(None)
    assert chunker.expected(10) is None
    assert chunker.learned() is None
    _observed(chunker, STEADY)
    assert chunker.expected(10) == 10 / 128
    assert chunker.learned() == (0.5, 64)

    seeded = Chunker(None)
    seeded.seed(chunker.learned())  # a repeated call of the same function starts at full speed
    assert (seeded.size, seeded.expected(10)) == (32, 10 / 128)
    fresh = Chunker(None)
    fresh.seed(None)
    assert fresh.size == 1
    fixed = Chunker(7)
    fixed.seed(chunker.learned())
    assert fixed.size == 7


def test_chunker_target_seconds():
    assert _observed(Chunker(None, target_seconds=1.0), STEADY).size == 128
    assert _observed(Chunker(None, target_seconds=1.0), [*STEADY, ("bytes", 10, 1024)]).size == 10


def _job(items, chunksize=None):
    return CollectJob(
        abs,
        P.CALL_ONE,
        items,
        lambda ok, value: None,
        timeout=None,
        retries=0,
        chunksize=chunksize,
        name="map",
    )


@pytest.mark.parametrize("chunksize", [None, 7])
def test_the_cluster_configuration(chunksize):
    """The cluster engine's chunker aims at its own CHUNK_SECONDS (0.5 s here, local 0.25 s)."""
    job = _job(list(range(10)), chunksize)
    ClusterEngine._prepare(ClusterEngine.__new__(ClusterEngine), job)
    assert job.chunker.fixed == chunksize
    _observed(job.chunker, STEADY)
    assert job.chunker.size == (64 if chunksize is None else 7)
    assert job.chunker.next_size(None, 1, None) == (64 if chunksize is None else 7)
    _observed(job.chunker, [("bytes", 10, 1024)])
    assert job.chunker.size == (10 if chunksize is None else 7)


# -- Job.take / Job.requeue ----------------------------------------------------------------

LETTERS = list("abcdefghij")


def _cut(piece):
    return piece.start, piece.items, piece.attempts


def _pending(job):
    return [(s.start + s.pos, s.items[s.pos :], s.attempts) for s in job.pending]


def test_take_cuts_off_the_front():
    job = _job(LETTERS)
    assert (job.remaining(), job.pending_items()) == (10, 10)
    assert _cut(job.take(3)) == (0, ["a", "b", "c"], 0)
    assert (job.dispatched, job.remaining(), job.pending_items()) == (3, 7, 7)
    assert _cut(job.take(3)) == (3, ["d", "e", "f"], 0)
    assert _cut(job.take(100)) == (6, ["g", "h", "i", "j"], 0)
    assert (job.pending_items(), job.remaining(), bool(job.pending)) == (0, 0, False)


def test_requeued_items_go_first_in_their_order():
    job = _job(LETTERS)
    first, second = job.take(3), job.take(3)
    job.requeue(second.start, second.items, 0)  # the engine puts chunks back last first
    job.requeue(first.start, first.items, 0)
    assert (job.dispatched, job.remaining()) == (0, 10)
    assert [_cut(job.take(3)) for _ in range(3)] == [
        (0, ["a", "b", "c"], 0),
        (3, ["d", "e", "f"], 0),
        (6, ["g", "h", "i"], 0),
    ]


def test_a_chunk_never_spans_two_slabs():
    job = _job(LETTERS)
    job.take(5)
    job.requeue(3, ["d"], 1)  # blamed: one more attempt; it must not share a chunk with "f"
    job.requeue(0, ["a", "b", "c"], 0)
    assert _pending(job) == [(0, ["a", "b", "c"], 0), (3, ["d"], 1), (5, ["f", "g", "h", "i", "j"], 0)]
    assert [_cut(job.take(10)) for _ in range(3)] == [
        (0, ["a", "b", "c"], 0),
        (3, ["d"], 1),
        (5, ["f", "g", "h", "i", "j"], 0),
    ]


def test_a_slab_cut_keeps_its_attempts():
    job = _job(LETTERS)
    piece = job.take(10)
    job.requeue(piece.start, piece.items, 2)
    assert _cut(job.take(4)) == (0, ["a", "b", "c", "d"], 2)
    assert _cut(job.take(4)) == (4, ["e", "f", "g", "h"], 2)


def test_a_pickled_chunk_goes_whole():
    """A chunk held back with its payload is sent as it is, whatever the limit."""
    job = _job(LETTERS)
    piece = job.take(5)
    job.requeue(piece.start, piece.items, 0, b"payload")
    again = job.take(2)
    assert (_cut(again), again.payload) == ((0, ["a", "b", "c", "d", "e"], 0), b"payload")
    assert job.take(2).payload is None  # a cut of a fresh slab has none


def test_requeue_of_nothing_or_into_a_cancelled_job_does_nothing():
    job = _job(LETTERS)
    piece = job.take(4)
    job.requeue(0, [], 3)
    assert (_pending(job), job.dispatched) == ([(4, ["e", "f", "g", "h", "i", "j"], 0)], 4)
    job.cancel()
    job.requeue(piece.start, piece.items, 0)
    assert (_pending(job), job.dispatched, job.done) == ([], 4, True)


@pytest.mark.parametrize("seed", range(25))
def test_random_takes_and_requeues_lose_and_duplicate_nothing(seed):
    """Each index is, at every step, in exactly one place: pending, out (sent), or delivered;
    it travels with its own item, and with the attempts it was last put back with."""
    rng = random.Random(seed)
    n = rng.randint(1, 40)
    job = _job([1000 + i for i in range(n)])
    attempts = [0] * n
    out = []  # chunks sent and not answered: (start, items)
    delivered = []

    def take():
        piece = job.take(rng.randint(1, 8))
        assert piece.items == [1000 + i for i in range(piece.start, piece.start + len(piece.items))]
        assert {attempts[i] for i in range(piece.start, piece.start + len(piece.items))} == {piece.attempts}
        out.append((piece.start, piece.items))

    def put_back():  # as the engine does after a death: whole, or blaming one item
        start, items = out.pop(rng.randrange(len(out)))
        if rng.random() < 0.5:
            job.requeue(start, items, attempts[start])
            return
        k = rng.randrange(len(items))
        before, after = attempts[start], attempts[start + k] + 1
        job.requeue(start + k + 1, items[k + 1 :], before)
        job.requeue(start + k, [items[k]], after)
        job.requeue(start, items[:k], before)
        attempts[start + k] = after

    for _ in range(150):
        roll = rng.random()
        if job.pending and (roll < 0.5 or not out):
            take()
        elif out and roll < 0.8:
            put_back()
        elif out:
            start, items = out.pop(rng.randrange(len(out)))
            delivered.extend(range(start, start + len(items)))
        held = [start + i for start, items, _ in _pending(job) for i in range(len(items))]
        held += [start + i for start, items in out for i in range(len(items))]
        assert sorted(held + delivered) == list(range(n))
        assert job.dispatched == n - job.pending_items() == n - job.remaining()
    while job.pending:
        take()
    delivered += [start + i for start, items in out for i in range(len(items))]
    assert sorted(delivered) == list(range(n))


class _Future:
    def __init__(self, cancelled=False):
        self.cancelled = cancelled

    def try_start(self):
        return not self.cancelled


def _submit_job(cancelled=()):
    job = SubmitJob(abs, P.CALL_ONE, None, timeout=None, retries=0, name="submit")
    for i in range(5):
        job.add(f"x{i}", _Future(i in cancelled))
    return job


@pytest.mark.parametrize(
    ("cancelled", "takes"),
    [
        pytest.param((), [(0, ["x0", "x1", "x2", "x3", "x4"])], id="consecutive submits: one slab"),
        pytest.param((2,), [(0, ["x0", "x1"]), (3, ["x3", "x4"])], id="a cancelled one is dropped"),
        pytest.param((0, 1), [(2, ["x2", "x3", "x4"])], id="cancelled at the front"),
        pytest.param((0, 1, 2, 3, 4), [(0, [])], id="all cancelled: nothing to send"),
    ],
)
def test_submit_job_take_drops_cancelled_futures(cancelled, takes):
    job = _submit_job(cancelled)
    got = []
    while job.pending:
        piece = job.take(10)
        got.append((piece.start, piece.items))
    assert got == takes
    assert sorted(job.futures) == [i for i in range(5) if i not in cancelled]


def test_a_new_submit_does_not_join_a_retried_slab():
    job = SubmitJob(abs, P.CALL_ONE, None, timeout=None, retries=1, name="submit")
    job.add("x0", _Future())
    job.add("x1", _Future())
    piece = job.take(10)
    job.requeue(piece.start, piece.items, 1)  # its worker died: a second attempt
    job.add("x2", _Future())
    assert _pending(job) == [(0, ["x0", "x1"], 1), (2, ["x2"], 0)]


# -- StreamJob.next_piece: how a lazy map reads its input -------------------------------------


class _Engine:
    """Stands in for the engine: records what the job feeds it."""

    processes = 1  # read-ahead: 2 * PREFETCH * 1 = 4 items while the chunk size is 1

    def __init__(self):
        self.fed = []

    def feed(self, job, slab, *, last):
        self.fed.append((None if slab is None else (slab.start, slab.items), last))


class _Source:
    """An iterator that counts what was read from it."""

    def __init__(self, n, fail_at=None):
        self.n, self.read, self.fail_at = n, 0, fail_at

    def __iter__(self):
        return self

    def __next__(self):
        if self.read == self.fail_at:
            raise ValueError("bad input")
        if self.read >= self.n:
            raise StopIteration
        self.read += 1
        return self.read - 1


def _stream(n, ordered=True, **kw):
    source = _Source(n, **kw)
    engine = _Engine()
    job = StreamJob(
        engine,
        abs,
        P.CALL_ONE,
        source,
        ordered=ordered,
        timeout_error=TimeoutError,
        timeout=None,
        retries=0,
        chunksize=None,
        name="imap",
    )
    return job, source


def _now():
    return time.monotonic()  # a deadline already passed: next_piece waits for nothing


def test_next_piece_reads_input_lazily_up_to_the_read_ahead():
    job, source = _stream(100)
    assert source.read == 0  # nothing is read before the first result is asked for
    with pytest.raises(TimeoutError):
        job.next_piece(_now())
    assert (source.read, job.engine.fed) == (4, [((0, [0, 1, 2, 3]), False)])
    with pytest.raises(TimeoutError):
        job.next_piece(_now())
    assert source.read == 4  # no result handed out yet: no more read
    job.deliver(0, ["r0", "r1"], None)
    assert job.next_piece(_now()) == ["r0", "r1"]
    with pytest.raises(TimeoutError):
        job.next_piece(_now())
    assert job.engine.fed[1:] == [((4, [4, 5]), False)]  # two handed out: two more read


def test_next_piece_reads_more_as_the_chunk_size_grows():
    job, source = _stream(1000)
    job.chunker.observe(64, 0.5)  # chunks of 32: read-ahead 4 chunks of 32
    with pytest.raises(TimeoutError):
        job.next_piece(_now())
    assert source.read == 128


@pytest.mark.parametrize(
    ("ordered", "pieces"),
    [(True, [["r0", "r1"], ["r2", "r3"]]), (False, [["r2", "r3"], ["r0", "r1"]])],
    ids=["imap: input order", "imap_unordered: arrival order"],
)
def test_next_piece_order(ordered, pieces):
    job, _ = _stream(4, ordered)
    job.deliver(2, ["r2", "r3"], None)
    job.deliver(0, ["r0", "r1"], None)
    assert [job.next_piece(_now()), job.next_piece(_now())] == pieces
    assert job.next_piece(_now()) is _END


def test_results_held_behind_the_head_do_not_stop_the_reading():
    job, source = _stream(100)
    with pytest.raises(TimeoutError):
        job.next_piece(_now())
    job.deliver(1, ["r1", "r2", "r3"], None)  # item 0 is slow (or retried): these wait for it
    with pytest.raises(TimeoutError):
        job.next_piece(_now())
    assert source.read == 7  # 4 + the 3 held back
    assert job.engine.fed[1:] == [((4, [4, 5, 6]), False)]


def test_next_piece_hands_errors_at_their_place():
    job, _ = _stream(4)
    boom = KeyError("boom")
    job.deliver(0, ["r0", None, "r2", "r3"], {1: boom})
    assert [job.next_piece(_now()) for _ in range(3)] == [["r0"], boom, ["r2", "r3"]]
    assert job.next_piece(_now()) is _END


def test_the_end_of_the_input():
    job, _ = _stream(3)
    with pytest.raises(TimeoutError):
        job.next_piece(_now())
    assert job.engine.fed == [((0, [0, 1, 2]), True)]  # fewer than asked for: the last
    job.deliver(0, ["r0", "r1", "r2"], None)
    assert job.next_piece(_now()) == ["r0", "r1", "r2"]
    assert job.next_piece(_now()) is _END
    assert job.engine.fed == [((0, [0, 1, 2]), True)]


def test_an_empty_input_ends_at_once():
    job, source = _stream(0)
    assert job.next_piece(_now()) is _END
    assert (job.engine.fed, source.read) == ([(None, True)], 0)


def test_an_input_that_raises_does_so_after_the_results_before_it():
    job, source = _stream(10, fail_at=2)
    with pytest.raises(TimeoutError):  # the items taken before the error run first
        job.next_piece(_now())
    assert job.engine.fed == [((0, [0, 1]), True)]  # and the scheduler hears the input ended
    assert source.read == 2
    job.deliver(0, ["r0", "r1"], None)
    assert job.next_piece(_now()) == ["r0", "r1"]
    error = job.next_piece(_now())  # then the input's own error, in its place (once)
    assert isinstance(error, ValueError) and str(error) == "bad input"
    assert job.next_piece(_now()) is _END


def test_an_aborted_job_raises_then_ends():
    job, source = _stream(100)
    with pytest.raises(TimeoutError):
        job.next_piece(_now())
    failure = RuntimeError("pool terminated")
    job.abort(failure)
    with pytest.raises(RuntimeError, match="pool terminated"):
        job.next_piece(_now())
    assert job.next_piece(_now()) is _END
    assert source.read == 4


def test_input_stopped_short_raises_instead_of_ending_quietly():
    job, source = _stream(100)
    with pytest.raises(TimeoutError):
        job.next_piece(_now())
    job.stop_input()
    assert job.engine.fed[-1] == (None, True)
    job.deliver(0, ["r0", "r1", "r2", "r3"], None)
    assert job.next_piece(_now()) == ["r0", "r1", "r2", "r3"]
    with pytest.raises(RuntimeError, match="shut down before this map read all of its input"):
        job.next_piece(_now())
    assert source.read == 4


# -- blame.judge: after a worker's death ---------------------------------------------------

SEQ = 7  # the chunk's number
UNPICKLE = " (while unpickling its arguments)"
PICKLE = " (while pickling its result)"


def _judge(n, slot, *, target=None, kill=None, timed=True, attempts=0, retries=0):
    return judge(
        n, SEQ, slot, target=target, kill_reason=kill, timed=timed, attempts=attempts, retries=retries
    )


WHOLE = Verdict(((0, 4, 0),))  # the chunk of 4 goes back as it was: no one blamed
SPLIT = Verdict(((0, 1, 0), (1, 1, 0), (2, 1, 0), (3, 1, 0)))  # one chunk an item: find the culprit


@pytest.mark.parametrize(
    ("n", "slot", "kw", "verdict"),
    [
        # the slot names item 2 of a timed chunk: it is blamed, its mates run again unblamed
        pytest.param(4, (SEQ, 2), {}, Verdict(((0, 2, 0), (3, 1, 0)), 2, 1, "lost"), id="k, spent: fails"),
        pytest.param(
            4, (SEQ, 2), {"retries": 1}, Verdict(((0, 2, 0), (2, 1, 1), (3, 1, 0)), 2, 1), id="k, retries"
        ),
        pytest.param(4, (SEQ, 0), {}, Verdict(((1, 3, 0),), 0, 1, "lost"), id="the first item"),
        pytest.param(4, (SEQ, 3), {}, Verdict(((0, 3, 0),), 3, 1, "lost"), id="the last item"),
        pytest.param(
            4,
            (SEQ, 1),
            {"attempts": 1, "retries": 2},
            Verdict(((0, 1, 1), (1, 1, 2), (2, 2, 1)), 1, 2),
            id="attempts carried, one retry left",
        ),
        pytest.param(
            4,
            (SEQ, 1),
            {"attempts": 2, "retries": 2},
            Verdict(((0, 1, 2), (2, 2, 2)), 1, 3, "lost"),
            id="spent",
        ),
        pytest.param(1, (SEQ, 0), {}, Verdict((), 0, 1, "lost"), id="one item"),
        pytest.param(1, (SEQ, 0), {"retries": 1}, Verdict(((0, 1, 1),), 0, 1), id="one item, retries"),
        pytest.param(1, (SEQ, 0), {"timed": False}, Verdict((), 0, 1, "lost"), id="one item, untimed"),
        # no item named: an untimed chunk's slot says 0 for all of it
        pytest.param(4, (SEQ, 0), {"timed": False}, SPLIT, id="untimed chunk: split"),
        pytest.param(4, (SEQ, 0), {"timed": False, "retries": 5}, SPLIT, id="untimed chunk, retries: split"),
        # no slot information about this chunk
        pytest.param(4, (SEQ - 1, 2), {}, WHOLE, id="slot on the chunk before: never began"),
        pytest.param(4, (0, 0), {}, WHOLE, id="fresh slot: never began"),
        pytest.param(4, (SEQ, P.PHASE_IDLE), {}, WHOLE, id="finished: its result was lost"),
        pytest.param(1, (SEQ, P.PHASE_IDLE), {}, Verdict(((0, 1, 0),)), id="finished, one item"),
        # phases: a whole chunk is unpickled / pickled at once
        pytest.param(1, (SEQ, P.PHASE_UNPICKLE), {}, Verdict((), 0, 1, "lost", UNPICKLE), id="unpickle, one"),
        pytest.param(1, (SEQ, P.PHASE_PICKLE), {}, Verdict((), 0, 1, "lost", PICKLE), id="pickle, one"),
        pytest.param(
            1,
            (SEQ, P.PHASE_PICKLE),
            {"kill": "timeout"},
            Verdict((), 0, 1, "timeout", PICKLE),
            id="pickle, one, timed out",
        ),
        pytest.param(4, (SEQ, P.PHASE_UNPICKLE), {}, SPLIT, id="unpickle, chunk: split"),
        pytest.param(4, (SEQ, P.PHASE_PICKLE), {}, SPLIT, id="pickle, chunk: split"),
        # timeouts: the item it was killed for, not where the slot got to afterwards
        pytest.param(
            4,
            (SEQ, 3),
            {"kill": "timeout", "target": (SEQ, 1)},
            Verdict(((0, 1, 0), (2, 2, 0)), 1, 1, "timeout"),
            id="timeout: the target, not the slot",
        ),
        pytest.param(
            4,
            (SEQ, 3),
            {"kill": "timeout", "target": (SEQ, 1), "retries": 1},
            Verdict(((0, 1, 0), (1, 1, 1), (2, 2, 0)), 1, 1),
            id="timeout, retries",
        ),
        pytest.param(
            4,
            (SEQ, P.PHASE_IDLE),
            {"kill": "timeout", "target": (SEQ, 2)},
            Verdict(((0, 2, 0), (3, 1, 0)), 2, 1, "timeout"),
            id="timeout: finished after the kill decision still counts",
        ),
        pytest.param(
            4, (SEQ, 2), {"kill": "timeout", "target": (SEQ - 1, 0)}, WHOLE, id="timeout for another chunk"
        ),
        pytest.param(
            4,
            (SEQ, 2),
            {"kill": None, "target": None},
            Verdict(((0, 2, 0), (3, 1, 0)), 2, 1, "lost"),
            id="death",
        ),
        # no task's fault
        pytest.param(4, (SEQ, 2), {"kill": "cancelled"}, WHOLE, id="cancelled"),
        pytest.param(4, (SEQ, 2), {"kill": "shutdown"}, WHOLE, id="shutdown"),
        pytest.param(4, (SEQ, 2), {"kill": "server"}, WHOLE, id="fork server died"),
        pytest.param(4, (SEQ, 0), {"kill": "server", "timed": False}, WHOLE, id="server, untimed"),
        pytest.param(
            1,
            (SEQ, P.PHASE_UNPICKLE),
            {"kill": "cancelled"},
            Verdict(((0, 1, 0),)),
            id="cancelled while unpickling",
        ),
    ],
)
def test_blame(n, slot, kw, verdict):
    assert _judge(n, slot, **kw) == verdict


def test_every_verdict_accounts_for_every_item_once():
    """Each item of the chunk goes back exactly once, or is the blamed item that fails;
    only the blamed item's attempts change, by one."""
    phases = (P.PHASE_UNPICKLE, P.PHASE_PICKLE, P.PHASE_IDLE)
    kills = [None, "timeout", "cancelled", "shutdown", "server"]
    seen = set()
    for n in (1, 2, 3):
        slots = [(SEQ, i) for i in (*range(n), *phases)] + [(SEQ - 1, 0)]
        targets = [None, (SEQ - 1, 0)] + [(SEQ, i) for i in (*range(n), *phases[:2])]
        for slot in slots:
            for target in targets:
                for kill in kills:
                    for timed in (False, True):
                        for attempts, retries in ((0, 0), (0, 1), (1, 1), (2, 5)):
                            v = _judge(
                                n,
                                slot,
                                target=target,
                                kill=kill,
                                timed=timed,
                                attempts=attempts,
                                retries=retries,
                            )
                            back = [i for offset, count, _ in v.back for i in range(offset, offset + count)]
                            failed = [] if v.fails is None else [v.blamed]
                            assert sorted(back + failed) == list(range(n))
                            assert back == sorted(back)  # in chunk order
                            for offset, count, tries in v.back:
                                assert count > 0
                                assert tries == (attempts + 1 if offset == v.blamed else attempts)
                            if v.blamed is not None:
                                assert v.attempts == attempts + 1
                                assert (v.fails is None) == (attempts + 1 <= retries)
                                if v.fails is not None:
                                    assert v.fails == ("timeout" if kill == "timeout" else "lost")
                            else:
                                assert v.fails is None
                            seen.add((v.blamed is not None, v.fails, len(v.back)))
    assert len(seen) > 5  # the grid reaches blame, retries, failures and splits
