"""forklift report and forklift top: summaries, the HTML and PNG timelines, the live view, bad input."""

import argparse
import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from forklift import errors, report
from forklift.cli.report import register
from forklift.journal import WORKER_SQL, Journal, worker_row


def cli(*args):
    parser = argparse.ArgumentParser(prog="forklift")
    register(parser.add_subparsers(dest="command"))
    ns = parser.parse_args([str(a) for a in args])
    return ns.func(ns)


def set_times(path, run, started, ended):
    """Give a run known start and end times (the writer stamps the clock's)."""
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE runs SET started = ?, ended = ?, status = 'failed' WHERE run = ?", (started, ended, run)
        )
    conn.close()


def build(path):
    """Two slots, three workers over 10 s; every number below is worked out by hand.

    worker 11: tasks 0-3 in one chunk (1 s each), task 4 raises (2 s)
    worker 12: task 5 is lost with it after 3 s, retried ...
    worker 13: ... and done there in 5 s (attempt 2)
    """
    j = Journal(path)
    run = j.begin("map", "map(square)", "sig", workers=2, total=6)
    run.chunk(0, 4, 1, 11, 1000.0, 1004.0)
    run.chunk(4, 1, 1, 11, 1004.0, 1006.0, failed=[0])
    run.task(4, "failed", worker=11, began=1004.0, ended=1006.0, error="ValueError: bad input 4")
    run.task(
        5, "retried", worker=12, began=1000.0, ended=1003.0, error="worker 12 was killed by SIGKILL; retried"
    )
    run.chunk(5, 1, 2, 13, 1005.0, 1010.0)
    j.close()
    set_times(path, run.run, 1000.0, 1010.0)
    return run.run


@pytest.fixture
def journal(tmp_path):
    path = tmp_path / "run.db"
    build(path)
    return path


def load(path, run=None):
    conn = report.open_journal(path)
    try:
        return report.load_run(conn, run or report.run_ids(conn)[-1])
    finally:
        conn.close()


# -- summaries ----------------------------------------------------------------------------


def test_summary_per_worker_from_known_times(journal):
    s = load(journal).summary
    assert s.wall == 10.0 and s.lanes == [11, 12, 13]
    w11, w12, w13 = s.workers
    assert (w11.tasks, w11.done, w11.failures, w11.retries) == (5, 4, 1, 0)
    assert (w11.mean, w11.p50, w11.p99) == pytest.approx((1.2, 1.0, 2.0))
    assert w11.busy == pytest.approx(6.0) and w11.utilisation == pytest.approx(0.6)
    assert (w12.tasks, w12.done, w12.failures, w12.retries) == (1, 0, 0, 1)
    assert w12.busy == pytest.approx(3.0) and w12.utilisation == pytest.approx(0.3)
    assert (w13.tasks, w13.done, w13.mean, w13.utilisation) == (1, 1, pytest.approx(5.0), pytest.approx(0.5))


def test_summary_of_the_run(journal):
    total = load(journal).summary.total
    # 7 attempts, one of them a retry: 6 tasks; durations 1 1 1 1 2 3 5
    assert (total.tasks, total.done, total.failures, total.retries) == (6, 5, 1, 1)
    assert (total.mean, total.p50, total.p99) == pytest.approx((2.0, 1.0, 5.0))
    # busy 6 + 3 + 5 s over 10 s of wall time on a pool of 2
    assert total.busy == pytest.approx(14.0) and total.utilisation == pytest.approx(0.7)


def summarize(values):
    """The plain nearest-rank reference: mean, p50 and p99 of a list of durations."""
    ordered = sorted(values)

    def pct(p):
        return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]

    return {"mean": sum(ordered) / len(ordered), "p50": pct(0.5), "p99": pct(0.99)}


def test_weighted_percentiles_match_one_value_per_task():
    rng = random.Random(3)
    for _ in range(50):
        pairs = [(rng.random(), rng.randint(1, 20)) for _ in range(rng.randint(1, 30))]
        expanded = [v for v, c in pairs for _ in range(c)]
        want = summarize(expanded)
        assert report.weighted_summary(pairs) == pytest.approx((want["mean"], want["p50"], want["p99"]))


def test_union_length_counts_overlaps_once():
    assert report.union_length([(0, 2), (1, 3), (5, 6), (5.5, 5.7)]) == pytest.approx(4.0)
    assert report.union_length([]) == 0.0


def test_summary_table_on_stdout(journal, tmp_path, capsys):
    assert cli("report", journal, "-o", tmp_path / "t.html") == 0
    out = capsys.readouterr().out
    assert "run 1: map(square) (2 workers, 6 tasks" in out
    lines = {line.split()[1]: line.split() for line in out.splitlines() if line.startswith("pid ")}
    assert lines["11"][2:6] == ["5", "4", "1", "0"] and lines["11"][-1] == "60%"
    assert next(line for line in out.splitlines() if line.startswith("all")).split()[-1] == "70%"


# -- HTML ---------------------------------------------------------------------------------


def page(path, tmp_path, *more):
    out = tmp_path / "t.html"
    assert cli("report", path, "-o", out, *more) == 0
    text = out.read_text(encoding="utf-8")
    return text, ET.fromstring(text)  # well-formed: parses as XML


SVG = "{http://www.w3.org/2000/svg}"


def test_html_is_self_contained_with_lanes_legend_and_table(journal, tmp_path):
    text, root = page(journal, tmp_path)
    lanes = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "lane"]
    assert len(lanes) == 3
    labels = [t.text for t in root.iter(f"{SVG}text") if t.text and t.text.startswith("pid ")]
    assert labels == ["pid 11", "pid 12", "pid 13"]
    legend = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    for _, words in report.STATUS_STYLE.values():
        assert words in legend
    titles = [t.text for t in root.iter(f"{SVG}title")]
    assert any("task 4: failed" in t and "ValueError: bad input 4" in t for t in titles)
    assert any("task 5: done, attempt 2" in t for t in titles)
    rows = [tr for tr in root.iter("tr")]
    assert len(rows) == 1 + 3 + 1  # header, a row per worker, the total
    assert "<script" not in text and "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in text and "@import" not in text and "url(" not in text


def test_bars_are_coloured_by_status(journal, tmp_path):
    _, root = page(journal, tmp_path)
    bars = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "bar"]
    fills = {r.get("fill") for r in bars}
    assert {report.STATUS_STYLE[s][0] for s in ("done", "failed", "retried")} <= fills
    assert any(r.get("stroke") == report.RERUN_STROKE for r in bars)  # the retry is outlined


def one_task_journal(path):
    j = Journal(path)
    run = j.begin("submit", "f", "sig", workers=1, total=1)
    run.chunk(0, 1, 1, 7, 1000.0, 1000.001)
    j.close()
    set_times(path, run.run, 1000.0, 1000.002)


def test_one_task(tmp_path, capsys):
    one_task_journal(tmp_path / "one.db")
    _, root = page(tmp_path / "one.db", tmp_path)
    bars = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "bar"]
    assert len(bars) == 1 and float(bars[0].get("width")) > 100
    out = capsys.readouterr().out
    assert "run 1: submit f (1 worker, 1 task, started" in out
    assert next(line for line in out.splitlines() if line.startswith("all")).split()[1:5] == [
        "1",
        "1",
        "0",
        "0",
    ]


def test_huge_run_is_merged_small_and_keeps_counts(tmp_path):
    path = tmp_path / "big.db"
    j = Journal(path)
    run = j.begin("map", "tiny", "sig", workers=2, total=20_000)
    t = {1: 1000.0, 2: 1000.0}
    for i in range(20_000):
        w = 1 + i % 2
        run.chunk(i, 1, 1, w, t[w], t[w] + 0.0005)
        t[w] += 0.0005 + (0.05 if i == 9_000 else 0.0)  # one idle gap, ~10 px wide
    j.close()
    set_times(path, run.run, 1000.0, max(t.values()))
    text, root = page(path, tmp_path)
    bars = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "bar"]
    assert len(bars) == 3  # worker 2: one bar; worker 1: two, around its idle gap
    assert len(text) < 100_000
    assert load(path).summary.total.tasks == 20_000


def test_every_run_in_one_page(journal, tmp_path):
    j = Journal(journal)
    run = j.begin("map", "again", "sig", workers=1, total=1)
    run.chunk(0, 1, 1, 99, 2000.0, 2001.0)
    j.close()
    _, root = page(journal, tmp_path, "--run", "all")
    assert [s.get("id") for s in root.iter("section")] == ["run-1", "run-2"]
    _, root = page(journal, tmp_path)  # default: the latest run
    assert [s.get("id") for s in root.iter("section")] == ["run-2"]


# -- PNG ----------------------------------------------------------------------------------


def test_png(journal, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "t.png"
    assert cli("report", journal, "-o", out) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


@pytest.fixture
def no_matplotlib(monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails as if not installed


def test_png_without_matplotlib_says_what_to_install(journal, tmp_path, no_matplotlib, capsys):
    assert cli("report", journal, "-o", tmp_path / "t.png") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'forklift[report]'" in err
    assert not (tmp_path / "t.png").exists()


def test_png_without_matplotlib_is_an_import_error_not_a_journal_error(journal, tmp_path, no_matplotlib):
    """As a missing Dask distributed is: the journal is fine, a package is missing."""
    with pytest.raises(ImportError, match=r"pip install 'forklift\[report\]'") as info:
        report.render_png([load(journal)], tmp_path / "t.png", "t")
    assert isinstance(info.value, report.MissingMatplotlib) and info.value.name == "matplotlib"
    assert not isinstance(info.value, (errors.JournalError, ValueError))
    assert report.MissingMatplotlib is errors.MissingMatplotlib  # defined with the others
    assert not (tmp_path / "t.png").exists()


def drawn_figure(monkeypatch, runs):
    """The matplotlib Figure render_png saves, to look at what it drew."""
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    saved = []
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: saved.append(fig))
    report.render_png(runs, "unused.png", "t")
    return saved[0]


def test_png_marks_where_a_worker_ended(journal, monkeypatch):
    """The HTML drew a cross after a bar whose worker died; the PNG drew nothing there."""
    fig = drawn_figure(monkeypatch, [load(journal)])
    timeline = fig.axes[0]
    crosses = [line for line in timeline.lines if line.get_marker() == "x"]
    assert len(crosses) == 1
    # task 5 lost with pid 12 (the middle lane of three: row 1) 3 s after the start
    assert list(crosses[0].get_xdata()) == [3.0] and list(crosses[0].get_ydata()) == [1]
    assert "worker died or killed" in [t.get_text() for t in fig.legends[0].get_texts()]


def forklift_run_journal(path):
    """A real ``forklift run --journal``: two slots; a job that passes, one that exits 3, one
    killed for its --timeout."""
    done = subprocess.run(
        [sys.executable, "-m", "forklift", "run", "-j", "2", "--timeout", "1", "--journal", str(path),
         ":::", "true", "exit 3", "sleep 10"],
        capture_output=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr  # two jobs failed


def test_a_forklift_run_journal_reads_as_jobs_in_slots(tmp_path, capsys, monkeypatch):
    path = tmp_path / "jobs.db"
    forklift_run_journal(path)
    _, root = page(path, tmp_path)
    out = capsys.readouterr().out
    assert "run 1: run {} (2 slots, 3 tasks, started" in out  # the total it did not record: counted
    assert sorted(line.split()[0] + line.split()[1] for line in out.splitlines()[2:4]) == ["slot1", "slot2"]
    labels = {t.text for t in root.iter(f"{SVG}text") if t.text and t.text.startswith(("pid ", "slot "))}
    assert labels == {"slot 1", "slot 2"}
    legend = " ".join(t.text or "" for t in next(root.iter(f"{SVG}g")).iter(f"{SVG}text"))
    assert "failed (exit status not 0)" in legend and "raised" not in legend
    titles = [t.text for t in root.iter(f"{SVG}title")]
    assert any("exit code 3" in t and "slot " in t for t in titles)  # a bar's hover: its slot
    deaths = [t for t in root.iter(f"{SVG}text") if t.get("class") == "death"]
    assert [d.find(f"{SVG}title").text for d in deaths if d.find(f"{SVG}title") is not None] == [
        "the job was killed here: it timed out"
    ]
    fig = drawn_figure(monkeypatch, [load(path)])
    assert sorted(t.get_text() for t in fig.axes[0].get_yticklabels()) == ["slot 1", "slot 2"]
    assert "failed (exit status not 0)" in [t.get_text() for t in fig.legends[0].get_texts()]


def test_sub_microsecond_tasks_are_not_zero(tmp_path):
    """A chunk of 1,000 tasks in 0.3 ms read ``mean 0 us``."""
    assert [report.fmt_seconds(s) for s in (3e-7, 2.5e-6, 1.5e-4)] == ["300 ns", "2.5 us", "150 us"]
    path = tmp_path / "tiny.db"
    j = Journal(path)
    run = j.begin("map", "map(abs)", "sig", workers=1, total=1000)
    run.chunk(0, 1000, 1, 7, 1000.0, 1000.0003)
    j.close()
    set_times(path, run.run, 1000.0, 1000.001)
    text = report.summary_text(load(path).summary)
    row = next(line for line in text.splitlines() if line.startswith("all")).split()
    assert row[5:11] == ["300", "ns", "300", "ns", "300", "ns"], text


# -- bad input ----------------------------------------------------------------------------


def fingerprint(path):
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def fails_with_one_line(capsys, *args, want):
    assert cli(*args) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and want in captured.err and "Traceback" not in captured.err, (
        captured.err
    )


def test_missing_file(tmp_path, capsys):
    fails_with_one_line(capsys, "report", tmp_path / "nope.db", "-o", tmp_path / "t.html", want="no journal")
    fails_with_one_line(capsys, "top", tmp_path / "nope.db", "--once", want="no journal")
    assert not (tmp_path / "nope.db").exists() and not (tmp_path / "t.html").exists()


def test_sqlite_file_of_another_program_is_refused_untouched(tmp_path, capsys):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    conn.close()
    before = fingerprint(path)
    fails_with_one_line(capsys, "report", path, "-o", tmp_path / "t.html", want="not a forklift journal")
    fails_with_one_line(capsys, "top", path, "--once", want="not a forklift journal")
    assert fingerprint(path) == before and not (tmp_path / "t.html").exists()


@pytest.mark.parametrize("damage", ["text", "torn"])
def test_corrupted_file_is_refused_untouched(journal, tmp_path, capsys, damage):
    if damage == "text":
        journal.write_text("name,value\nsquare,4\n" * 100)
    else:  # keep the header (a journal at first sight), wreck the pages behind it
        data = bytearray(journal.read_bytes())
        data[100:] = os.urandom(len(data) - 100)
        journal.write_bytes(bytes(data))
    before = fingerprint(journal)
    assert cli("report", journal, "-o", tmp_path / "t.html") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("forklift report: error:") and "Traceback" not in err
    assert fingerprint(journal) == before and not (tmp_path / "t.html").exists()


def test_empty_journal_and_unknown_run(tmp_path, capsys):
    Journal(tmp_path / "empty.db").close()
    fails_with_one_line(
        capsys, "report", tmp_path / "empty.db", "-o", tmp_path / "t.html", want="holds no runs"
    )
    build(tmp_path / "run.db")
    fails_with_one_line(capsys, "report", tmp_path / "run.db", "--run", "7", "-o", tmp_path / "t.html",
                        want="no run 7 in this journal (runs 1-1)")  # fmt: skip
    assert not (tmp_path / "t.html").exists()


@pytest.mark.parametrize("args", [["-o", "t.pdf"], ["--run", "latest"], ["--run", "0"]])
def test_bad_arguments_exit_2(journal, args, capsys):
    with pytest.raises(SystemExit) as exc:
        cli("report", journal, *args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


def test_unwritable_output(journal, tmp_path, capsys):
    fails_with_one_line(
        capsys, "report", journal, "-o", tmp_path / "no" / "dir" / "t.html", want="cannot write"
    )


# -- top ----------------------------------------------------------------------------------


@pytest.fixture
def busy_child():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child
    child.kill()
    child.wait()


def test_top_once_shows_live_workers(tmp_path, capsys, busy_child):
    path = tmp_path / "live.db"
    j = Journal(path)
    run = j.begin("map", "map(crunch)", "sig", workers=2, total=500)
    run.chunk(0, 40, 1, busy_child.pid, 1000.0, 1001.0, failed=[3])
    run.task(3, "failed", worker=busy_child.pid, began=1000.0, ended=1000.1, error="boom")
    # A row names its run by the JournalRun: the writer thread puts in the run's id.
    j.add(WORKER_SQL, worker_row(busy_child.pid, run, "busy", 41, 40))
    j.add(WORKER_SQL, (424242, 1, run, "busy", 7, 3, 0.0))  # stale row of a pool long gone
    j.close()
    assert cli("top", path, "--once") == 0
    out = capsys.readouterr().out
    assert "run 1: map(crunch): 39/500 (8%), 1 failed" in out
    row = next(line for line in out.splitlines() if line.lstrip().startswith(str(busy_child.pid)))
    cells = row.split()
    assert cells[:6] == [str(busy_child.pid), str(os.getpid()), "1", "busy", "41", "40"]
    assert cells[-1] == "MiB" and float(cells[-2]) > 1  # RSS measured by psutil
    assert "424242" not in out


def test_top_waits_for_a_journal_not_made_yet(tmp_path):
    """Started before its pool, top exited ("no journal"); it waits, says so in one line,
    shows the journal once a pool makes it, and Ctrl-C ends it."""
    path = tmp_path / "later.db"
    top = subprocess.Popen(
        [sys.executable, "-m", "forklift", "top", str(path), "-n", "0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(2.0)
        assert top.poll() is None, top.communicate()
        j = Journal(path)
        j.begin("map", "map(arrived)", "sig", workers=1, total=3)
        j.close()
        time.sleep(1.5)
        assert top.poll() is None
        top.send_signal(signal.SIGINT)
        out, err = top.communicate(timeout=20)
    finally:
        if top.poll() is None:
            top.kill()
            top.wait()
    assert top.returncode == 0, err
    assert err.count("\n") == 1 and "waiting for a pool to create it (Ctrl-C stops)" in err, err
    assert "run 1: map(arrived)" in out, out


def test_top_once_without_a_live_pool(journal, capsys):
    assert cli("top", journal, "--once") == 0
    assert capsys.readouterr().out.startswith(f"no live pool is recording into {journal}; last: run 1")


# -- a crafted journal: any column may hold anything ---------------------------------------

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(2)>'
EVIL = f"{SCRIPT}{IMG}\x1b[31m\x01'"  # markup, an attribute break-out, a terminal escape, a control

# Every column only shown: SQLite keeps text (or a blob) even in an INTEGER column.
SHOWN = {
    "runs": ["kind", "name", "signature", "pid", "host", "workers", "total", "status"],
    "chunks": ["worker", "failed"],
    "tasks": ["status", "worker", "error", "exit_code", "command"],
}
# Every column the drawing computes with: text there is refused in one line.
COMPUTED = [
    ("runs", "started"), ("runs", "ended"),
    ("chunks", "start"), ("chunks", "n"), ("chunks", "attempt"), ("chunks", "began"), ("chunks", "ended"),
    ("tasks", "idx"), ("tasks", "attempt"), ("tasks", "began"), ("tasks", "ended"),
]  # fmt: skip


def craft(path, table, column, value):
    with sqlite3.connect(path) as conn:
        conn.execute(f"UPDATE {table} SET {column} = ?", (value,))
    conn.close()


def crafted_journal(path):
    build(path)
    for table, columns in SHOWN.items():
        for column in columns:
            craft(path, table, column, f"{column} {EVIL}")
    craft(path, "runs", "host", f"host {EVIL}".encode())  # a blob too
    with sqlite3.connect(path) as conn:  # the column types held what they say, so the test is real
        kinds = conn.execute("SELECT typeof(pid), typeof(host) FROM runs").fetchone()
        kinds += conn.execute("SELECT typeof(worker) FROM chunks").fetchone()
    conn.close()
    assert kinds == ("text", "blob", "text")


ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "h1", "section", "h2", "p", "svg", "g", "rect",
    "text", "line", "table", "thead", "tbody", "tr", "th", "td", "span",
}  # fmt: skip


def test_html_of_a_crafted_journal_shows_every_value_as_text(tmp_path, capsys):
    path = tmp_path / "evil.db"
    crafted_journal(path)
    text, root = page(path, tmp_path)  # parses as XML: no control character broke it either
    for marker in ("<script", "<img", "<SCRIPT", "<IMG"):
        assert marker not in text
    for element in root.iter():
        tag = element.tag.rpartition("}")[2]
        assert tag in ALLOWED_TAGS, tag
        assert not [a for a in element.attrib if a.lower().startswith("on")], element.attrib
    shown = " ".join(root.itertext()) + " ".join(v for e in root.iter() for v in e.attrib.values())
    for table, columns in SHOWN.items():
        for column in columns:
            if column not in ("signature", "failed"):  # the report never shows these two
                assert f"{column} {SCRIPT}{IMG}" in shown, (table, column)
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x01" not in out  # the terminal gets escapes, not orders
    assert "kind <script>" in out and "\\x1b[31m\\x01" in out


@pytest.mark.filterwarnings("ignore:constrained_layout not applied")  # its lane labels are long
def test_png_of_a_crafted_journal_is_drawn(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "evil.db"
    crafted_journal(path)
    craft(path, "runs", "name", "echo $\\frac$ {}")  # mathtext that would raise while drawing
    out = tmp_path / "t.png"
    assert cli("report", path, "-o", out) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("table", "column"), COMPUTED)
def test_text_where_a_number_belongs_is_one_line_not_a_traceback(tmp_path, capsys, table, column):
    path = tmp_path / "evil.db"
    build(path)
    craft(path, table, column, SCRIPT)
    for output in ("t.html", "t.png"):
        fails_with_one_line(capsys, "report", path, "-o", tmp_path / output, want=f"{table}.{column} holds")
        assert not (tmp_path / output).exists()
    assert cli("top", path, "--once") == (1 if table == "runs" else 0)
    err = capsys.readouterr().err
    assert "Traceback" not in err and (table != "runs" or f"runs.{column} holds '<script>" in err)


def test_top_of_a_crafted_journal_shows_text(tmp_path, capsys, busy_child):
    path = tmp_path / "live.db"
    j = Journal(path)
    j.begin("map", "map(crunch)", "sig", workers=2, total=500)  # run 1
    j.add(WORKER_SQL, (busy_child.pid, os.getpid(), 1, "busy", 41, 40, time.time()))
    j.add(WORKER_SQL, (os.getpid(), os.getppid(), 1, "busy", 1, 2, time.time()))  # keeps run 1 live
    j.add(WORKER_SQL, (12345, 1 << 40, 1, "busy", 7, 3, time.time()))  # psutil: OverflowError
    j.add(WORKER_SQL, (12346, os.getpid(), 1, "busy", 7, 3, "<script>"))  # text sorts after numbers
    j.close()
    with sqlite3.connect(path) as conn:  # rich markup that would raise, a screen clear
        bad = "[/]\x1b[2J"
        conn.execute("UPDATE workers SET run = ?, state = ?, task = ?, done = ? WHERE pid = ?",
                     (bad, bad, bad, bad, busy_child.pid))  # fmt: skip
    conn.close()
    for column in ("name", "pid", "total"):
        craft(path, "runs", column, f"{column} {EVIL}")
    assert cli("top", path, "--once") == 0
    out = capsys.readouterr().out
    assert "run 1: map name <script>" in out and ": 0 done, " in out  # total is text: no share
    row = next(line for line in out.splitlines() if line.lstrip().startswith(str(busy_child.pid)))
    assert row.count("[/]\\x1b[2J") == 4, row  # run, state, task, done: as text
    assert "\x1b[2J" not in out and "<script>" not in row and "12345" not in out and "12346" not in out


def test_a_crafted_huge_chunk_is_refused_not_walked(tmp_path, capsys):
    """A chunk of 10**12 re-run items made the report walk them for hours."""
    path = tmp_path / "evil.db"
    build(path)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE chunks SET n = ?, attempt = 2", (10**12,))
    conn.close()
    t0 = time.monotonic()
    fails_with_one_line(capsys, "report", path, "-o", tmp_path / "t.html", want="chunks.n holds")
    assert time.monotonic() - t0 < 5
