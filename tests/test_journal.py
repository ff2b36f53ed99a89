"""The journal: what a pool records, resuming a map after SIGKILL, and refusing wrong files."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

import forklift
from forklift import JournalError
from forklift.journal import Journal

from tasks import exit_on, fail_on, sleep_return, square


def rows(db, sql, *args):
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql, args))


def test_pool_records_every_task_once(tmp_path):
    db = tmp_path / "run.db"
    with forklift.Pool(2, journal=db) as pool:
        assert pool.map(square, range(500)) == [x * x for x in range(500)]
        assert pool.starmap(pow, [(2, 3), (3, 2)]) == [8, 9]
    runs = rows(db, "SELECT run, kind, name, total, status FROM runs ORDER BY run")
    assert [r[1:] for r in runs] == [("map", "map(square)", 500, "done"), ("map", "starmap(pow)", 2, "done")]
    done = rows(db, "SELECT idx, status, worker, began, ended FROM task_rows WHERE run = 1 ORDER BY idx")
    assert [r[0] for r in done] == list(range(500)) and {r[1] for r in done} == {"done"}
    workers = {r[2] for r in done}
    assert workers <= {pid for (pid,) in rows(db, "SELECT pid FROM workers")}
    assert all(r[3] <= r[4] for r in done)
    t0, t1 = rows(db, "SELECT started, ended FROM runs WHERE run = 1")[0]
    assert t0 - 1 <= min(r[3] for r in done) and max(r[4] for r in done) <= t1 + 1


def test_failures_timeouts_and_lost_workers_get_their_own_rows(tmp_path):
    db = tmp_path / "run.db"
    with forklift.Pool(2, journal=db, retries=1, timeout=1.0) as pool:
        with pytest.raises(ValueError):
            pool.map(fail_on, [1, 2, 3], chunksize=1)  # raises for 3
        with pytest.raises(forklift.WorkerLostError):
            pool.map(exit_on, [3, 4], chunksize=1)  # its worker os._exit()s at 3
        with pytest.raises(forklift.TaskTimeout):
            pool.apply(sleep_return, (30, 1))
    got = rows(db, "SELECT r.name, t.idx, t.attempt, t.status, t.error FROM tasks t JOIN runs r USING (run)")
    by_status = {(name.split("(")[0], status) for name, _, _, status, _ in got}
    assert ("map", "failed") in by_status
    assert ("map", "retried") in by_status and ("map", "lost") in by_status  # retried once, then lost
    assert ("apply", "retried") in by_status and ("apply", "timeout") in by_status
    failed = [r for r in got if r[3] == "failed"]
    assert failed[0][1] == 2 and "ValueError" in failed[0][4]
    statuses = dict(rows(db, "SELECT name, status FROM runs"))
    assert statuses["map(fail_on)"] == "failed"


RESUMABLE = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {tests!r})
    import forklift
    from tasks import logged_square

    if __name__ == "__main__":
        with forklift.Pool(2) as pool:
            out = pool.map(logged_square, [({log!r}, x) for x in range(200)], journal={db!r}, resume=True)
        print(sum(out))
    """
)


def test_resume_after_sigkill_of_the_parent(tmp_path):
    """Kill the parent half way; the rerun recomputes nothing the journal holds, loses nothing."""
    db, log = tmp_path / "run.db", tmp_path / "ran.log"
    script = tmp_path / "job.py"
    script.write_text(RESUMABLE.format(tests=os.path.dirname(__file__), log=str(log), db=str(db)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if rows(db, "SELECT count(*) FROM task_rows")[0][0] >= 60:
                break
        except sqlite3.OperationalError:
            pass  # not created yet
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=10)  # its workers hold the pipe: this waits for them too
    assert b"Traceback" not in err, err.decode()  # they die quietly, none is left parked
    recorded = {idx for (idx,) in rows(db, "SELECT idx FROM task_rows WHERE status = 'done'")}
    assert 60 <= len(recorded) < 200, "the kill did not land half way"
    first_run = log.read_text().split()
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == sum(x * x for x in range(200))  # what a clean run gives
    second_run = [int(x) for x in log.read_text().split()[len(first_run) :]]
    assert not recorded & set(second_run), "a task the journal held ran again"
    assert set(second_run) | recorded == set(range(200))


def test_resume_skips_everything_stored_and_refuses_other_inputs(tmp_path):
    db = tmp_path / "run.db"
    with forklift.Pool(2) as pool:
        assert pool.map(square, range(100), journal=db, resume=True) == [x * x for x in range(100)]
        runs_before = rows(db, "SELECT count(*) FROM runs")[0][0]
        assert pool.map(square, range(100), journal=db, resume=True) == [x * x for x in range(100)]
        assert rows(db, "SELECT count(*) FROM runs")[0][0] == runs_before  # nothing ran
        with pytest.raises(JournalError, match="other inputs"):
            pool.map(square, list(range(1, 101)), journal=db, resume=True)
        assert pool.map(square, list(range(1, 101)), journal=db, resume=True, force=True)[0] == 1
        with pytest.raises(JournalError, match="holds no run of map"):
            pool.map(square, range(7), journal=db, resume=True)
        with pytest.raises(ValueError, match="needs a journal"):
            pool.map(square, range(3), resume=True)


def test_results_are_kept_only_by_calls_that_resume(tmp_path):
    db = tmp_path / "run.db"
    with forklift.Pool(2, journal=db) as pool:
        pool.map(square, range(50))  # a record only: no results, no input digests
    assert rows(db, "SELECT count(*) FROM chunks WHERE results IS NOT NULL OR inputs IS NOT NULL") == [(0,)]
    with forklift.Pool(2, journal=db, resume=True) as pool:  # every map resumes, so keeps them
        assert pool.map(square, range(50)) == [x * x for x in range(50)]
        assert pool.map(square, range(50)) == [x * x for x in range(50)]
    kept = rows(db, "SELECT run, sum(n) FROM chunks WHERE results IS NOT NULL GROUP BY run")
    assert kept == [(2, 50)]  # the second resumed call ran nothing
    with pytest.raises(ValueError, match="needs a journal"):
        forklift.Pool(1, resume=True)


@pytest.mark.parametrize("content", [b"not a database at all\n" * 10, b""])
def test_a_file_that_is_not_a_journal_is_refused_and_untouched(tmp_path, content):
    path = tmp_path / "notes.db"
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    for target in ([path] if content else []) + [other]:
        if target is path:
            path.write_bytes(content)
        before = target.read_bytes()
        with pytest.raises(JournalError):
            Journal(target)
        with pytest.raises(JournalError):
            forklift.Pool(1, journal=target)
        assert target.read_bytes() == before


def test_journal_and_address_do_not_mix():
    with pytest.raises(ValueError, match="local pools only"):
        forklift.Pool(1, address="local", journal="x.db")


def test_executor_records_submits_and_maps(tmp_path):
    db = tmp_path / "run.db"
    with forklift.Executor(2, journal=db) as ex:
        futures = [ex.submit(square, i) for i in range(20)]
        assert [f.result() for f in futures] == [i * i for i in range(20)]
        assert list(ex.map(square, range(30))) == [i * i for i in range(30)]
    kinds = {kind for (kind,) in rows(db, "SELECT kind FROM runs")}
    assert kinds == {"submit", "imap"}
    per_kind = dict(
        rows(db, "SELECT r.kind, count(*) FROM task_rows t JOIN runs r USING (run) GROUP BY r.kind")
    )
    assert per_kind == {"submit": 20, "imap": 30}


@pytest.mark.needs("proc")
def test_inputs_through_shared_memory_are_recomputed_not_trusted(tmp_path):
    """Arguments of 1 MiB or more travel out of band, with no digest: resume runs them again."""
    from tasks import first_byte

    db = tmp_path / "run.db"
    with forklift.Pool(2) as pool:
        ones = [bytes([1]) * (2 << 20)] * 3
        assert pool.map(first_byte, ones, journal=db, resume=True) == [1, 1, 1]
        twos = [bytes([2]) * (2 << 20)] * 3
        assert pool.map(first_byte, twos, journal=db, resume=True) == [2, 2, 2]


@pytest.fixture
def locked_journal(tmp_path, monkeypatch):
    """A journal whose write lock another connection holds (as another process would)."""
    from forklift import journal as journal_module

    monkeypatch.setattr(journal_module, "BUSY_SECONDS", 0.3, raising=False)
    db = tmp_path / "run.db"
    Journal(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    yield db, holder
    holder.close()


def test_a_locked_journal_never_stalls_the_pool(locked_journal, caplog):
    """The scheduler used to wait 30 s inside Journal.begin, miss a timeout meanwhile, then
    fail the whole pool with 'database is locked' and leave the call being registered
    unsettled for ever."""
    db, holder = locked_journal
    with forklift.Pool(2, journal=db) as pool:
        t0 = time.monotonic()
        with pytest.raises(forklift.TaskTimeout):
            pool.apply(sleep_return, (30,), timeout=0.5)
        assert time.monotonic() - t0 < 2.0
        assert pool.map(square, range(50)) == [i * i for i in range(50)]
        holder.execute("COMMIT")  # the lock goes: the rows kept meanwhile are written at close
        pool.close()
        pool.join()
    mapped = "SELECT count(*) FROM task_rows t JOIN runs r USING (run) WHERE r.kind = 'map'"
    assert rows(db, mapped) == [(50,)]
    assert "database is locked" not in caplog.text  # written in the end: nothing to report


def test_a_journal_locked_to_the_end_is_reported_not_raised(locked_journal, caplog):
    db, _ = locked_journal
    pool = forklift.Pool(2, journal=db)
    assert pool.map(square, range(10)) == [i * i for i in range(10)]
    t0 = time.monotonic()
    pool.terminate()
    assert time.monotonic() - t0 < 3.0
    assert "database is locked" in caplog.text and "rows were not recorded" in caplog.text


def test_a_resumable_call_whose_results_cannot_be_recorded_fails_clearly(locked_journal):
    db, _ = locked_journal
    with forklift.Pool(2) as pool:
        with pytest.raises(JournalError, match="could not be recorded"):
            pool.map(square, range(10), journal=db, resume=True)
        assert pool.map(square, range(3)) == [0, 1, 4]


EDITED = """
import edited_helpers


def helper(x):
    return x + {helper}


class Scaler:
    def __init__(self, k):
        self.k = k

    def apply(self, x):
        return self.shift(x) * self.k

    def shift(self, x):
        return x + {shift}


def f(x):{comment}
    return helper(x) * {factor} + edited_helpers.offset(x)
"""
HELPERS = """
def offset(x):
    return {offset}
"""


def _edit(tmp_path, module, factor=1, helper=0, shift=0, offset=0, comment=""):
    import importlib

    (tmp_path / "edited_helpers.py").write_text(HELPERS.format(offset=offset))
    (tmp_path / "edited_task.py").write_text(
        EDITED.format(factor=factor, helper=helper, shift=shift, comment=comment)
    )
    importlib.invalidate_caches()
    if module is None:
        return importlib.import_module("edited_task")
    importlib.reload(sys.modules["edited_helpers"])
    return importlib.reload(module)


def test_resume_refuses_results_of_code_that_has_changed_since(tmp_path, monkeypatch):
    """An importable function pickles by name: resuming after a fix used to hand back the
    old code's results (44 of 100 in the report). Followed: the function, the functions
    and classes of its module it names, methods called through self, and functions of
    the user's own modules called as module.name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    mod = _edit(tmp_path, None)
    db = tmp_path / "run.db"
    items = list(range(20))

    def run(fn=None, **kw):
        with forklift.Pool(2, start_method="fork") as pool:  # fork: workers see the edited module
            return pool.map(fn or mod.f, items, journal=db, resume=True, **kw)

    assert run() == items
    mod = _edit(tmp_path, mod, comment="  # a comment: the code is the same")
    assert run() == items  # resumed: nothing changed that matters
    mod = _edit(tmp_path, mod, factor=3)
    with pytest.raises(JournalError, match="made by other code"):
        run()
    assert run(force=True) == [3 * x for x in items]  # recomputed, not the stored ones
    for edit, expected in (
        ({"helper": 1}, [3 * (x + 1) for x in items]),  # a function of its module it calls
        ({"helper": 1, "offset": 5}, [3 * (x + 1) + 5 for x in items]),  # edited_helpers.offset
    ):
        mod = _edit(tmp_path, mod, factor=3, **edit)
        with pytest.raises(JournalError, match="made by other code"):
            run()
        assert run(force=True) == expected
    assert run(mod.Scaler(2).apply, force=True) == [2 * x for x in items]  # a new function here
    assert run(mod.Scaler(2).apply) == [2 * x for x in items]  # resumed
    mod = _edit(tmp_path, mod, factor=3, helper=1, offset=5, shift=1)  # what apply calls on self
    with pytest.raises(JournalError, match="made by other code"):
        run(mod.Scaler(2).apply)
    assert run(mod.Scaler(2).apply, force=True) == [2 * (x + 1) for x in items]
    for name in ("edited_task", "edited_helpers"):
        sys.modules.pop(name, None)


MAIN_RESUME = """
import sys
import forklift


class Offset:
    def __init__(self, k):
        self.k = k

    def __call__(self, x):
        return x + self.k


def plus_one(x):
    return x + 1


if __name__ == "__main__":
    fn = Offset(1) if sys.argv[1] == "object" else plus_one
    with forklift.Pool(2) as pool:
        print(pool.map(fn, range(6), journal=sys.argv[2], resume=True))
"""


@pytest.mark.parametrize("kind", ["object", "function"])
def test_resume_of_main_code_survives_unrelated_changes(tmp_path, kind):
    """cloudpickle's pickle of __main__ code holds line numbers and, for a class, a random
    id: resume was refused with nothing changed, or after a comment above the function."""
    script, db = tmp_path / "main_job.py", tmp_path / "run.db"
    script.write_text(MAIN_RESUME)
    first = subprocess.run([sys.executable, str(script), kind, str(db)], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    script.write_text("# a comment, and a blank line\n\n" + MAIN_RESUME)
    again = subprocess.run([sys.executable, str(script), kind, str(db)], capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout == first.stdout, again.stderr
    assert rows(db, "SELECT count(*) FROM runs") == [(1,)]  # resumed: nothing ran again


def test_a_pool_that_resumes_by_default_runs_maps_it_has_no_run_of(tmp_path):
    """Pool(journal=..., resume=True) refused every map the journal held no run of."""
    with forklift.Pool(2, journal=tmp_path / "run.db", resume=True) as pool:
        assert pool.map(square, range(5)) == [0, 1, 4, 9, 16]
        assert pool.map(square, range(3)) == [0, 1, 4]
        assert pool.map(exit_on, range(3), retries=0) == [0, 1, 2]


def test_a_call_registered_as_the_pool_ends_is_settled(tmp_path, monkeypatch):
    """A map handed to the scheduler while terminate() was shutting it down (after the
    journal closed, before the wake pipe did) used to fail inside Journal.begin, be
    swallowed, and leave its caller waiting for ever. Both steps are slowed down here so
    that the call lands in that window every time."""
    import threading

    from forklift._engine import bulk, front

    slow_pickle = front.pickle_function
    slow_clear = bulk.SegmentCache.clear

    def pickle_late(fn, name):
        time.sleep(0.3)  # the call passed check_running; terminate() runs meanwhile
        return slow_pickle(fn, name)

    def clear_slowly(self):
        time.sleep(0.8)  # _shutdown, before it closes the wake pipe
        slow_clear(self)

    db = tmp_path / "run.db"
    pool = forklift.Pool(1, journal=db)
    monkeypatch.setattr(front, "pickle_function", pickle_late)
    monkeypatch.setattr(bulk.SegmentCache, "clear", clear_slowly)
    outcome = []

    def call():
        try:
            outcome.append(pool.map(square, range(3)))
        except (forklift.BrokenPoolError, ValueError) as exc:
            outcome.append(type(exc).__name__)

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.05)
    pool.terminate()
    t.join(10)
    assert not t.is_alive(), "a call racing terminate() was never settled"
    assert outcome == ["BrokenPoolError"]


def test_a_journal_deleted_while_written_is_reported(tmp_path, caplog):
    """Its rows went on into the unlinked file, and a resumable call returned as if recorded."""
    db = tmp_path / "run.db"
    with forklift.Pool(2, journal=db, resume=True) as pool:
        assert pool.map(square, range(5)) == [0, 1, 4, 9, 16]
        os.unlink(db)
        with pytest.raises(JournalError, match="deleted or replaced"):
            pool.map(square, range(6))
    journal = Journal(tmp_path / "other.db")
    journal.begin("map", "x", "sig")
    os.unlink(tmp_path / "other.db")
    with pytest.raises(JournalError, match="deleted or replaced"):
        journal.close()


def _journal_threads():
    import threading

    return [t for t in threading.enumerate() if t.name == "forklift-journal"]


def _wait_gone(what, seconds=5.0):
    deadline = time.monotonic() + seconds
    while what() and time.monotonic() < deadline:
        time.sleep(0.02)
    return what()


def test_a_calls_own_journal_is_closed_however_the_call_ends(tmp_path):
    """Found by the soak: Ctrl-C in pool.map(..., journal=PATH), or a map racing close(),
    left that call's Journal open for good (its writer thread and its descriptors)."""
    import signal
    import threading

    from tasks import SlowToPickleCallable

    with forklift.Pool(2) as pool:
        pool.map(square, [1])
        before = len(_journal_threads())
        old = signal.signal(signal.SIGALRM, signal.default_int_handler)
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        try:
            with pytest.raises(KeyboardInterrupt):
                pool.map(sleep_return, [0.5] * 4, journal=tmp_path / "interrupted.db")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        assert len(_wait_gone(lambda: _journal_threads()[before:])) == 0
    pool = forklift.Pool(2)
    threading.Timer(0.2, pool.close).start()
    with pytest.raises(ValueError, match="Pool not running"):
        pool.map(SlowToPickleCallable(0.5), [1, 2], journal=tmp_path / "raced.db")
    pool.join()
    assert not _wait_gone(_journal_threads)


@pytest.mark.parametrize("where", ["begin", "job", "plan"])
def test_a_ctrl_c_between_opening_a_calls_journal_and_starting_its_job_closes_it(
    tmp_path, monkeypatch, where
):
    """Found by the soak (1 run in 6 under spawn): an interrupt after the call's own journal
    was opened but before its job took it over (here: while the run is begun in it, while the
    job is built, while the plan is made) left its writer thread and descriptors open."""
    import forklift._places.base as base
    import forklift._places.resume as resume

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    with forklift.Pool(1) as pool:
        pool.map(square, [1])
        before = len(_journal_threads())
        if where == "begin":
            monkeypatch.setattr(Journal, "begin", interrupt)
        elif where == "job":
            monkeypatch.setattr(base, "CollectJob", interrupt)
        else:
            monkeypatch.setattr(resume, "signature", interrupt)
        with pytest.raises(KeyboardInterrupt):
            pool.map(square, [1, 2], journal=tmp_path / "own.db")
        assert len(_wait_gone(lambda: _journal_threads()[before:])) == 0


@pytest.mark.parametrize("stop", ["terminate", "close"])
def test_a_resumed_map_racing_the_pools_end_gets_the_pools_error(tmp_path, stop):
    """Found by the soak: sqlite3.ProgrammingError ('Cannot operate on a closed database')
    came out of map when terminate() closed the pool's journal under a resumed map."""
    import threading

    from tasks import SlowToPickleCallable

    pool = forklift.Pool(2, journal=tmp_path / "run.db")
    pool.map(square, [1])
    end = pool.terminate if stop == "terminate" else lambda: (pool.close(), pool.join())
    threading.Timer(0.2, end).start()
    with pytest.raises((ValueError, forklift.BrokenPoolError)) as info:
        pool.map(SlowToPickleCallable(0.5), [1, 2, 3], resume=True)
    assert not isinstance(info.value, sqlite3.Error), info.value
    pool.join()


def test_a_ctrl_c_during_a_flush_leaves_no_transaction_open(tmp_path):
    """Found by the soak: an interrupt right after BEGIN IMMEDIATE in the caller's thread
    left the transaction open; that batch was lost and every later write failed."""
    import signal
    import threading

    from forklift.journal import WORKER_SQL, worker_row

    path = tmp_path / "run.db"
    journal = Journal(path)
    time.sleep(0.05)
    journal.add(WORKER_SQL, worker_row(1, None, "idle", None, 0))
    held = threading.Event()

    def hold(seconds):  # another process's write lock, here a thread's
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        held.set()
        time.sleep(seconds)
        conn.execute("COMMIT")
        conn.close()

    threading.Thread(target=hold, args=(0.3,)).start()
    held.wait()
    old = signal.signal(signal.SIGALRM, signal.default_int_handler)
    signal.setitimer(signal.ITIMER_REAL, 0.1)
    try:
        with pytest.raises(KeyboardInterrupt):
            journal.flush()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    time.sleep(0.5)
    journal.add(WORKER_SQL, worker_row(2, None, "idle", None, 0))
    journal.close()  # raised JournalError: cannot start a transaction within a transaction
    assert rows(path, "SELECT pid FROM workers ORDER BY pid") == [(1,), (2,)]


def test_the_journal_binds_no_numbered_placeholders_from_a_sequence(tmp_path):
    """Python 3.12.0-3.12.x warned (DeprecationWarning) on '?1' bound from a sequence, saying
    3.14 would raise sqlite3.ProgrammingError; a run's last row used them."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with forklift.Pool(2, journal=str(tmp_path / "run.db")) as pool:
            assert pool.map(square, range(5)) == [0, 1, 4, 9, 16]
    named = [w for w in caught if "named parameter" in str(w.message)]
    assert not named, named[0].message
    with sqlite3.connect(tmp_path / "run.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM runs WHERE ended IS NOT NULL").fetchone() == (1,)
    conn.close()


def test_a_journal_dropped_before_use_leaves_no_thread_and_no_open_file(tmp_path):
    """What a Ctrl-C between Journal() and its caller keeping it leaves behind: nothing.

    The writer thread starts with the first row, flush or close; a thread started by the
    constructor kept the journal (its file and a thread) alive for good (the soak's finding:
    'forklift-journal' thread and other.db descriptors left after an interrupted call)."""
    import gc

    def open_files():
        out = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                out.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:
                pass
        return [p for p in out if "dropped.db" in p]

    before = len(_journal_threads())
    journal = Journal(tmp_path / "dropped.db")
    assert len(_journal_threads()) == before and open_files()
    del journal
    gc.collect()
    assert len(_journal_threads()) == before
    assert open_files() == []
    used = Journal(tmp_path / "dropped.db")
    used.begin("map", "x", "sig")
    assert len(_journal_threads()) == before + 1
    used.close()
    assert _wait_gone(lambda: len(_journal_threads()) > before) is False
    assert open_files() == []
