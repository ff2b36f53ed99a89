"""Logging from workers: records reach the parent's handlers, tagged with their task."""

import asyncio
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest

import forklift
import forklift.aio
from forklift._engine import logs

import tasks


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def collect():
    """A handler on the parent's root logger at INFO; "forklift.test.quiet" set to ERROR."""
    root = logging.getLogger()
    handler = Collect()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    quiet = logging.getLogger("forklift.test.quiet")
    quiet.setLevel(logging.ERROR)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        quiet.setLevel(logging.NOTSET)


def ours(handler):
    return [r for r in handler.records if r.name.startswith("forklift.test")]


@pytest.mark.parametrize("start_method", ["forkserver", "spawn", "fork"])
def test_records_reach_the_parents_handlers_with_their_task(collect, start_method):
    with forklift.Pool(2, start_method=start_method) as pool:
        assert pool.map(tasks.log_and_square, range(6)) == [x * x for x in range(6)]
        workers = set(pool.worker_pids())
    got = ours(collect)  # map returned: every record of the call has been handled (flush_logs)
    # The parent's levels: INFO on root (no debug), ERROR on "forklift.test.quiet" (no quiet).
    assert sorted((r.levelname, r.getMessage()) for r in got) == sorted(
        [("INFO", f"info {x}") for x in range(6)] + [("WARNING", f"warning {x}") for x in range(6)]
    )
    for r in got:
        x = int(r.getMessage().split()[-1])
        assert r.forklift_task == x and r.forklift_call == "map(log_and_square)"
        assert r.process in workers and r.process != os.getpid()
        if r.levelname == "WARNING":
            assert r.detail == {"x": x}  # an extra= field travels


def test_under_fork_the_inherited_handlers_do_not_write_a_second_copy(tmp_path):
    """A FileHandler the workers inherit would write each record again from the worker."""
    log = tmp_path / "run.log"
    script = tmp_path / "main.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import logging, sys
            sys.path.insert(0, {os.path.dirname(tasks.__file__)!r})
            import forklift, tasks
            if __name__ == "__main__":
                logging.basicConfig(filename={str(log)!r}, level=logging.INFO, format="%(message)s")
                with forklift.Pool(2, start_method="fork") as pool:
                    pool.map(tasks.log_and_square, range(4))
            """
        )
    )
    subprocess.run([sys.executable, str(script)], check=True, timeout=60)
    lines = sorted(log.read_text().splitlines())
    expected = [f"{kind} {x}" for kind in ("info", "warning", "quiet") for x in range(4)]
    assert lines == sorted(expected)  # each once: from the parent's handler, not the worker's copy


def test_a_record_logged_right_before_the_worker_dies_is_not_lost(collect):
    with forklift.Pool(1) as pool, pytest.raises(forklift.WorkerLostError):
        pool.apply(tasks.log_then_die, (5,))
    last = [r for r in ours(collect) if r.getMessage() == "last words 5"]
    assert len(last) == 1 and last[0].forklift_task == 0


def test_exceptions_arrive_as_text_and_the_initializer_has_no_task(collect):
    with forklift.Pool(1, initializer=tasks.log_in_initializer) as pool, pytest.raises(ValueError):
        pool.apply(tasks.log_exception, (3,))
    got = {r.getMessage(): r for r in ours(collect)}
    assert got["initializer ran"].forklift_task is None
    failed = got["failed on 3"]
    assert failed.exc_info is None and "ValueError: bad 3" in failed.exc_text
    assert "ValueError: bad 3" in logging.Formatter().format(failed)


def test_executor_and_aio_forward_too(collect):
    with forklift.Executor(2) as ex:
        assert ex.submit(tasks.log_and_square, 2).result() == 4
    assert {"info 2", "warning 2"} <= {r.getMessage() for r in ours(collect)}

    async def main():
        async with forklift.aio.Pool(2) as pool:
            return await pool.map(tasks.log_and_square, [7])

    assert asyncio.run(main()) == [49]
    assert "info 7" in {r.getMessage() for r in ours(collect)}


def test_the_off_switch_leaves_the_workers_logging_alone(collect, monkeypatch):
    with forklift.Pool(1, forward_logging=False) as pool:
        assert pool.apply(tasks.log_and_square, (1,)) == 1
    monkeypatch.setattr(forklift._config, "FORWARD_LOGGING", False)
    with forklift.Pool(1) as pool:
        assert pool.apply(tasks.log_and_square, (1,)) == 1
    assert ours(collect) == []
    with pytest.raises(TypeError, match="forward_logging"):
        forklift.Pool(1, forward_logging="yes")


def test_a_failed_tasks_last_log_lines_are_kept_beside_its_error_in_the_journal(tmp_path, collect):
    db = tmp_path / "run.db"
    with forklift.Pool(1, journal=db) as pool:
        with pytest.raises(ValueError):
            pool.map(tasks.log_exception, [4])
        with pytest.raises(forklift.WorkerLostError):
            pool.map(tasks.log_then_die, [6])
    with sqlite3.connect(db) as conn:
        errors = [row[0] for row in conn.execute("SELECT error FROM tasks WHERE error IS NOT NULL")]
    failed = next(e for e in errors if "bad 4" in e)
    assert "--- its last log lines ---\nERROR forklift.test.work: failed on 4" in failed
    lost = next(e for e in errors if "last words" in e)
    assert "ERROR forklift.test.work: last words 6" in lost
    page = tmp_path / "report.html"  # forklift report shows them with the error (the bar's title)
    out = subprocess.run(
        [sys.executable, "-m", "forklift", "report", str(db), "--run", "all", "-o", str(page)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    html = page.read_text()
    assert "--- its last log lines ---\nERROR forklift.test.work: failed on 4" in html
    assert "ERROR forklift.test.work: last words 6" in html


def test_while_a_progress_bar_draws_a_stderr_handler_writes_through_richs_proxy(capsys):
    """rich swaps sys.stderr for a proxy that prints above the bar; a handler made before holds
    the real stderr, and is pointed at the proxy while a worker's record is handled."""

    class Proxy:
        def __init__(self, real):
            self.rich_proxied_file = real
            self.written = []

        def write(self, text):
            self.written.append(text)

        def flush(self):
            pass

    real = sys.stderr
    handler = logging.StreamHandler(real)
    logger = logging.getLogger("forklift.test.bar")
    logger.addHandler(handler)
    logger.propagate = False
    proxy = Proxy(real)
    try:
        sys.stderr = proxy
        logs.dispatch(logs.rebuild({"name": "forklift.test.bar", "msg": "above the bar", "levelno": 30,
                                    "levelname": "WARNING"}, 1, "map(f)"))  # fmt: skip
    finally:
        sys.stderr = real
        logger.removeHandler(handler)
        logger.propagate = True
    assert "above the bar" in "".join(proxy.written)
    assert handler.stream is real  # put back


def test_on_a_dask_cluster_the_workers_records_come_through_dask(collect):
    pytest.importorskip("distributed")
    import time

    with forklift.Pool(2, address="local") as pool:
        assert pool.map(tasks.log_and_square, range(3)) == [0, 1, 4]
        deadline = time.monotonic() + 10  # Dask sends them as events, after the results
        while len({r.getMessage() for r in ours(collect)} & {"warning 0", "warning 1", "warning 2"}) < 3:
            assert time.monotonic() < deadline, [r.getMessage() for r in ours(collect)]
            time.sleep(0.05)


def test_an_extra_field_that_does_not_pickle_travels_as_its_repr(collect):
    with forklift.Pool(1) as pool:
        assert pool.apply(tasks.log_unpicklable_extra) == "logged"
    (record,) = [r for r in ours(collect) if r.getMessage() == "with a lock"]
    assert record.lock.startswith("<unlocked _thread.lock")
