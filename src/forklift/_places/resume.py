"""A journaled ``map``, and resuming one: run only what no earlier run finished.

``pool.map(fn, items, journal="run.db", resume=True)``:

1. The call's signature is the digest of the pickled function, of its code (an
   importable function pickles by name only: an edited one must not get its old
   results back) and of the call mode (``map`` vs ``starmap``); its size is
   ``len(items)``. A journal whose runs of this function were made by other code
   is refused, naming the change, unless ``force=True`` (which recomputes all).
2. The journal's earlier runs with that signature and size give chunks of
   stored results. Each chunk carries the digest of its pickled inputs; the
   same items are pickled again here and compared, so a journal of *other*
   inputs is never taken for this one. A mismatch, or a journal whose runs are
   all of another function or size, is refused with :class:`JournalError`
   unless ``force=True`` (which then recomputes what does not match).
3. The items not covered run as one job whose rows name the inputs' own
   indices (``job.journal_index``), so the next resume finds them too; the
   final list merges stored and new results in input order.

Inputs of 1 MiB or more travel through shared memory, outside the pickle the
digest covers, so chunks carrying them keep no results and run again on resume.

Results come back from the journal unpickled with ``pickle``: resume only
journals you trust, as you would only unpickle data you trust.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from .._digest import inputs_digest, signature
from .._engine.front import pickle_function
from .._engine.jobs import Job
from ..journal import Journal, JournalError, JournalRun, load_results, other_signatures, stored_chunks

if TYPE_CHECKING:
    from .base import Place


class Plan(NamedTuple):
    """What a journaled map runs, and what ties its job to the journal."""

    items: list[Any]  # the inputs still to run
    on_done: Callable[[bool, Any], None]  # merges stored and new results
    setup: Callable[[Job], None]  # ties the job to the journal (and the journal's end to the job's)
    confirm: Callable[[], None]  # in the caller's thread at the end: were the rows written?
    release: Callable[[], None]  # the job was never started: let go of the journal


def plan_journaled(
    place: Place,
    fn: Callable[..., Any],
    items: list[Any],
    mode: int,
    on_done: Callable[[bool, Any], None],
    *,
    label: str,
    journal: str | os.PathLike[str] | None,
    resume: bool,
    force: bool,
) -> Plan | None:
    """What a journaled map runs: ``(items to run, their on_done, setup of the job, confirm)``.

    None when every result was stored (``on_done`` has then been called). The job
    itself is built by ``Place.collect``, as for any map; ``setup`` ties it to
    the journal. ``on_done`` runs on the scheduler thread and never waits for the
    file; ``confirm`` runs in the caller's thread once the result is in: it waits
    for the call's rows to be written and, for a call that resumes, raises
    JournalError if they could not be (a later resume would not find them).
    """
    owned = None
    try:  # from the open on: a Ctrl-C anywhere in here must not leave the call's own journal open
        if journal is not None and not _same_file(place.journal, journal):
            owned = Journal(journal)
        return _plan(place, owned, fn, items, mode, on_done, label=label, resume=resume, force=force)
    except BaseException:
        if owned is not None:
            owned.close()
        raise


def _plan(
    place: Place,
    owned: Journal | None,
    fn: Callable[..., Any],
    items: list[Any],
    mode: int,
    on_done: Callable[[bool, Any], None],
    *,
    label: str,
    resume: bool,
    force: bool,
) -> Plan | None:
    """:func:`plan_journaled` once the call's own journal (``owned``), if any, is open."""
    target = owned or place.journal
    if target is None:
        raise ValueError("resume=True needs a journal: pass journal='run.db' (or create the Pool with one)")
    sig = signature(pickle_function(fn, label), mode, fn)
    try:
        known = _stored_results(target, sig, items, label, force) if resume else {}
    except sqlite3.Error as exc:  # the pool's journal, closed by terminate() racing this call
        place.engine.check_running()
        raise JournalError(f"the journal {target.path!r} cannot be read: {exc}") from None
    missing = [i for i in range(len(items)) if i not in known]
    if not missing:
        on_done(True, [known[i] for i in range(len(items))])
        if owned is not None:
            owned.close()
        return None

    begun: list[JournalRun] = []

    def release() -> None:
        if owned is not None:
            owned.close_soon()

    def finish(ok: bool, value: Any) -> None:
        if ok and known:
            merged = [known.get(i) for i in range(len(items))]
            for i, v in zip(missing, value):
                merged[i] = v
            value = merged
        on_done(ok, value)

    def setup(job: Job) -> None:
        job.cleanups.append(release)  # however the job ends: done, failed, cancelled (Ctrl-C)
        job.journal = target.begin("map", label, sig, workers=place.processes, total=len(items))
        job.journal.keep_results = resume  # the next resume needs them; a plain record does not
        begun.append(job.journal)
        if known:
            job.journal_index = missing

    def confirm() -> None:
        error: BaseException | None = None
        if owned is not None:
            try:
                owned.wait_closed()
            except JournalError as exc:
                error = exc
        elif resume:
            target.flush()
        error = error or next((run.error for run in begun if run.error is not None), None)
        if error is None:
            return
        if not resume:  # a record only: say so, the results are good
            logging.getLogger("forklift").error("%s", error)
            return
        raise JournalError(
            f"{label}: its results could not be recorded in the journal {target.path!r} ({error}), "
            "so a later resume would run it again"
        )

    return Plan([items[i] for i in missing] if known else items, finish, setup, confirm, release)


def _stored_results(journal: Journal, sig: str, items: list[Any], label: str, force: bool) -> dict[int, Any]:
    """Results an earlier run stored for these very inputs, by index."""
    journal.flush()  # an earlier call of this process may still have rows queued
    with journal._lock:
        runs, chunks = stored_chunks(journal.conn, sig, len(items))
        others = other_signatures(journal.conn, "map") if not runs else []
    if not runs:
        if not force and any(n == label and t == len(items) for n, _, t in others):
            raise JournalError(
                f"the journal {journal.path!r} holds a run of {label} over {len(items)} inputs, but "
                f"made by other code: {label} (or a function of its module it calls) was changed "
                "since. Its stored results may be wrong for the code as it is now; pass "
                "force=True to run everything again (the old run stays in the journal)"
            )
        if others and not force:
            names = ", ".join(sorted({f"{n} over {t} inputs" for n, _, t in others}))
            raise JournalError(
                f"the journal {journal.path!r} holds no run of {label} over {len(items)} inputs to resume"
                f" (it has: {names}); pass force=True to run everything and record it there anyway"
            )
        return {}
    known: dict[int, Any] = {}
    for chunk in chunks:
        span = range(chunk.start, chunk.start + chunk.n)
        if chunk.start + chunk.n > len(items) or any(i in known for i in span):
            continue
        if (
            chunk.inputs is not None
            and inputs_digest(items[chunk.start : chunk.start + chunk.n]) != chunk.inputs
        ):
            if force:
                continue
            raise JournalError(
                f"the journal {journal.path!r} stored results of {label} for other inputs at"
                f" {chunk.start}..{chunk.start + chunk.n - 1}; pass force=True to recompute those"
            )
        for i, value in zip(span, load_results(chunk.results, chunk.n)):
            known[i] = value
    return known


def _same_file(journal: Journal | None, path: str | os.PathLike[str]) -> bool:
    if journal is None:
        return False
    try:
        return os.path.samefile(journal.path, path)
    except OSError:
        return False
