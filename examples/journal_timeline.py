"""Record a pool's run in a journal, then draw it: the timeline in docs/report.md comes from this.

``Pool(journal="run.db")`` writes every task attempt to a SQLite file as the pool
runs; ``forklift report run.db`` (or :mod:`forklift.report`, used here) draws one
lane per worker over time and a summary table. The run below has the things a
timeline is for: tasks of varying length, one that raises, one that kills its
worker (the pool starts a new worker and, with ``retries=1``, runs the task
again there) and a few long tasks at the end that leave a worker idle.

Run it, then open timeline.html in a browser; hover a bar for its task, times
and error. ``forklift top run.db`` in another terminal shows the workers live.
"""

import os
import time

import forklift
from forklift import report

MARKER = ".task-40-crashed"  # in the working directory, which the workers share


def work(i: int) -> int:
    if i == 117:
        raise ValueError(f"bad input {i}")
    if i == 40 and not os.path.exists(MARKER):
        open(MARKER, "w").close()
        time.sleep(0.05)
        os._exit(3)  # the worker dies in the middle of the task
    time.sleep(0.004 + (i * 37 % 11) * 0.002 if not 110 <= i < 116 else 0.12)
    return i * i


def main() -> None:
    for path in ("run.db", MARKER):
        if os.path.exists(path):
            os.remove(path)
    results, errors = [], []
    with forklift.Pool(2, journal="run.db", retries=1) as pool:
        it = pool.imap(work, range(120))
        while True:  # imap raises a task's error at its place and goes on with the rest
            try:
                results.append(next(it))
            except StopIteration:
                break
            except ValueError as exc:
                errors.append(exc)
    os.remove(MARKER)
    print(f"{len(results)} results, {len(errors)} error: {errors[0]!r}")

    conn = report.open_journal("run.db")
    data = report.load_run(conn, report.run_ids(conn)[-1])
    conn.close()
    t = data.summary.total
    print(f"journal: {t.tasks} tasks, {t.done} done, {t.failures} failed, {t.retries} retried")
    print(report.summary_text(data.summary))
    with open("timeline.html", "w", encoding="utf-8") as f:
        f.write(report.render_html([data], "forklift report: run.db"))
    print("wrote timeline.html")


if __name__ == "__main__":
    main()
