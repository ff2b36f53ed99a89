"""Blame: what becomes of the chunk a worker was on when it died (invariant 4 of core.py).

The results of a whole chunk die with its worker. An item is blamed (its
``attempts`` + 1) only when the worker's slot proves it was the one running:
the chunk was timed (the slot names the item), or the chunk holds one item.
Its chunk mates run again without blame. When the slot cannot say which item
it was (an untimed chunk of several items, or one that died unpickling its
arguments or pickling its results), the chunk is split into chunks of one item
so that the next death pins the culprit. A worker killed for a reason that is
no task's fault (a cancel, the pool's shutdown, its fork server's death), or
one that had not begun the chunk or had finished it, costs no one an attempt.

:func:`judge` is the decision alone, without the engine: offsets into the
chunk in, a :class:`Verdict` out. The engine applies it (``_recover_current``).
"""

from __future__ import annotations

from typing import NamedTuple

from . import protocol

#: What a death in one of the slot's phases adds to the lost worker's message.
PHASES = {
    protocol.PHASE_FUNCTION: " (while loading its function: importing its module)",
    protocol.PHASE_UNPICKLE: " (while unpickling its arguments)",
    protocol.PHASE_PICKLE: " (while pickling its result)",
}

#: Kill reasons that are no task's fault.
INNOCENT = ("cancelled", "shutdown", "server")


class Verdict(NamedTuple):
    """What to do with a dead worker's current chunk; offsets are into the chunk.

    ``back``: slabs ``(offset, count, attempts)`` that go back to the front of
    the job's input, in this order (the blamed item among them when it runs
    again). ``blamed``: the item that carries the death, with ``attempts`` (this
    death counted). ``fails``: None when it runs again; ``"timeout"`` or
    ``"lost"`` when it is out of retries and is delivered as failed with
    TaskTimeout or WorkerLostError. ``phase``: where in the item it died, for
    WorkerLostError's message.
    """

    back: tuple[tuple[int, int, int], ...]
    blamed: int | None = None
    attempts: int = 0
    fails: str | None = None
    phase: str = ""


def judge(
    n: int,
    seq: int,
    slot: tuple[int, int],
    *,
    target: tuple[int, int] | None,
    kill_reason: str | None,
    timed: bool,
    attempts: int,
    retries: int,
) -> Verdict:
    """Decide for a chunk of ``n`` items, number ``seq``, sent with ``attempts`` made so far.

    ``slot``: ``(seq, idx)`` as the worker's slot last said (see protocol.py);
    ``target``: the ``(seq, idx)`` the scheduler killed it for overrunning, if
    it did; ``kill_reason``: why the scheduler killed it (None: it died on its
    own); ``timed``: the call has a timeout (so the slot names the item);
    ``retries``: the call's.
    """
    at_seq, idx = slot
    if target is not None and target[0] == seq:
        at_seq, idx = target  # where it overran; what it did after the kill decision does not count
    if (
        kill_reason in INNOCENT
        or at_seq != seq
        or idx == protocol.PHASE_IDLE
        or (target is not None and target != (at_seq, idx))
    ):
        return Verdict(((0, n, attempts),))  # not its fault, or it never ran
    if n > 1 and not (timed and idx >= 0):
        return Verdict(tuple((i, 1, attempts) for i in range(n)))  # culprit unknown: isolate
    k = max(idx, 0) if n > 1 else 0
    blamed = attempts + 1
    fails = None if blamed <= retries else "timeout" if kill_reason == "timeout" else "lost"
    back = [(0, k, attempts)] if k else []
    if fails is None:
        back.append((k, 1, blamed))
    if k + 1 < n:
        back.append((k + 1, n - k - 1, attempts))
    return Verdict(tuple(back), k, blamed, fails, PHASES.get(idx, ""))
