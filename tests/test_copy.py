"""``forklift copy`` and ``forklift.copy_tree``: real trees, real signals, real errors."""

import hashlib
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from types import SimpleNamespace

import psutil
import pytest

import forklift
from forklift import copier
from forklift._copy import run, walk, worker

MTIME = 1_000_000_000_123_456_789  # ns: 2001-09-09, with a nanosecond part


@pytest.fixture(autouse=True, params=["in-process-first", "pool-only"])
def where_copied(request, monkeypatch):
    """Every test twice: as shipped (the parent copies the first IN_PROCESS_SECONDS itself,
    which is all of most of these small trees), and with every task in the worker pool."""
    if request.param == "pool-only":
        monkeypatch.setattr(run, "IN_PROCESS_SECONDS", 0.0)
        monkeypatch.setenv("FORKLIFT_COPY_IN_PROCESS_SECONDS", "0")
    return request.param


# -- helpers ---------------------------------------------------------------------------------
def snapshot(root):
    """Everything a copy must keep: per path its type, mode, mtime_ns and content (or link target)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames] if dirpath == str(root) else [*dirnames, *filenames]:
            path = os.path.normpath(os.path.join(dirpath, name))
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path), st.st_mtime_ns)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns)
            else:
                out[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_mtime_ns, st.st_size, digest(path))
    return out


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def contents(root):
    """Relative path -> sha256 of every regular file but temp files (metadata is not the point here)."""
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path) and not copier.is_temp_name(name):
                out[os.path.relpath(path, root)] = digest(path)
    return out


def temp_files(root):
    return [os.path.join(d, n) for d, _, names in os.walk(root) for n in names if copier.is_temp_name(n)]


def write(path, data, mode=0o644, mtime=MTIME):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    os.utime(path, ns=(mtime, mtime))


def make_tree(root):
    """Files of several sizes and modes, odd names, symlinks, empty and read-only dirs."""
    write(root / "a.txt", b"hello\n", 0o640)
    write(root / "empty.bin", b"", 0o600)
    write(root / "exe.sh", b"#!/bin/sh\necho hi\n", 0o755)
    write(root / "with space é.txt", b"odd name\n")
    write(root / "sub" / "deep" / "mid.bin", os.urandom(300_000))
    for i in range(300):  # more than one batch
        write(root / "many" / f"f{i:03d}", os.urandom(i * 13), mtime=MTIME + i)
    write(root / "ro" / "inside.txt", b"in a read-only dir\n", 0o444)
    os.makedirs(root / "empty_dir" / "nested_empty")
    os.symlink("a.txt", root / "rel_link")
    os.symlink("/nonexistent/target", root / "broken_link")
    os.symlink("sub", root / "dir_link")
    for d in ("many", "sub/deep", "sub", "empty_dir/nested_empty", "empty_dir"):
        os.utime(root / d, ns=(MTIME, MTIME))
    os.chmod(root / "ro", 0o555)
    os.utime(root / "ro", ns=(MTIME, MTIME))


def forklift_copy(*args, prefix=(), timeout=60):
    return subprocess.run(
        [*prefix, sys.executable, "-m", "forklift", "copy", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def cli_output_ok(out):
    assert "Traceback" not in out.stderr, out.stderr


# -- identity and reruns -----------------------------------------------------------------------
def test_tree_copy_is_identical(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src)
    report = copier.copy_tree(src, dst, workers=2)
    assert report.ok, report.errors
    assert snapshot(dst) == snapshot(src)
    assert os.path.islink(dst / "dir_link") and os.readlink(dst / "dir_link") == "sub"
    assert report.files_copied == len([p for p, v in snapshot(src).items() if v[0] != "dir"])
    assert report.dirs == 7  # the root, sub, sub/deep, many, ro, empty_dir, nested_empty
    assert temp_files(dst) == []


def test_workers_of_every_start_method_find_the_task_function(tmp_path, monkeypatch, start_method):
    """The pool's initializer and task function travel by module path (forklift._copy.worker):
    a forkserver or spawn worker imports it afresh, a big file's ranges included."""
    monkeypatch.setattr("forklift._copy.run._start_method", lambda: start_method)
    monkeypatch.setattr(walk, "SPLIT_BYTES", 1 << 20)
    monkeypatch.setattr(walk, "RANGE_BYTES", 256 << 10)
    src = tmp_path / "src"
    write(src / "small" / "a.txt", b"a", 0o640)
    write(src / "big.bin", os.urandom(3 << 20))
    report = copier.copy_tree(src, tmp_path / "dst", workers=2, verify=True)
    assert report.ok, report.errors
    assert snapshot(tmp_path / "dst") == snapshot(src)


def test_a_small_tree_is_copied_without_a_pool_and_a_big_one_starts_one(tmp_path, monkeypatch, where_copied):
    """Within IN_PROCESS_SECONDS the parent copies by itself; past it, the pool takes the rest."""
    started = []
    real = run._Run._start_pool
    monkeypatch.setattr(run._Run, "_start_pool", lambda self: started.append(1) or real(self))
    src = tmp_path / "src"
    make_tree(src)
    if where_copied == "in-process-first":
        monkeypatch.setattr(run, "IN_PROCESS_SECONDS", 60.0)
        report = copier.copy_tree(src, tmp_path / "dst", workers=2)
        assert report.ok and started == []
    monkeypatch.setattr(run, "IN_PROCESS_SECONDS", 0.0)
    report = copier.copy_tree(src, tmp_path / "dst2", workers=2)
    assert report.ok and started == [1]
    assert snapshot(tmp_path / "dst2") == snapshot(src)


def test_modes_are_kept_under_any_umask(tmp_path):
    """Workers create files under umask 0; the parent, copying a small tree itself, under the
    caller's: bits the umask clears are set back, and the caller's umask is left as it was."""
    src = tmp_path / "src"
    for mode in (0o777, 0o755, 0o666, 0o640, 0o4755, 0o400):
        write(src / f"m{mode:o}", b"x", mode)
    old = os.umask(0o077)
    try:
        report = copier.copy_tree(src, tmp_path / "dst", workers=2)
        assert os.umask(0o077) == 0o077
    finally:
        os.umask(old)
    assert report.ok, report.errors
    assert snapshot(tmp_path / "dst") == snapshot(src)


def test_owner_and_special_mode_bits_are_kept_as_root(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("only root can give files away")
    src = tmp_path / "src"
    write(src / "theirs.txt", b"owned by someone else")
    write(src / "setuid", b"#!/bin/sh\n", 0o755)
    os.chown(src / "theirs.txt", 12345, 54321)
    os.chown(src / "setuid", 12345, 54321)
    os.chmod(src / "setuid", 0o4755)  # after chown, which clears it
    os.symlink("theirs.txt", src / "link")
    os.chown(src / "link", 23456, 65432, follow_symlinks=False)
    report = copier.copy_tree(src, tmp_path / "dst", workers=2)
    assert report.ok, report.errors
    for name in ("theirs.txt", "setuid", "link"):
        a, b = os.lstat(src / name), os.lstat(tmp_path / "dst" / name)
        assert (b.st_uid, b.st_gid, b.st_mode) == (a.st_uid, a.st_gid, a.st_mode), name


def test_rerun_skips_unchanged_and_recopies_changed(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src)
    n = sum(1 for v in snapshot(src).values() if v[0] != "dir")
    first = forklift_copy(src, dst, "-j", "2")
    assert first.returncode == 0, first.stderr
    assert f"copied {n} files" in first.stdout

    again = forklift_copy(src, dst)
    assert again.returncode == 0, again.stderr
    assert "copied 0 files" in again.stdout and f"skipped {n} up to date" in again.stdout

    write(src / "many" / "f007", b"changed, and a new mtime")  # size and mtime differ
    write(src / "a.txt", b"HELLO\n", 0o640)  # same size, same mtime: the quick check cannot see it
    write(src / "new.txt", b"new file\n")
    refresh = forklift_copy(src, dst)
    assert refresh.returncode == 0, refresh.stderr
    assert "copied 2 files" in refresh.stdout, refresh.stdout
    assert (dst / "a.txt").read_bytes() == b"hello\n"  # what rsync's quick check does too

    by_content = forklift_copy(src, dst, "--checksum")
    assert by_content.returncode == 0, by_content.stderr
    assert "copied 1 file " in by_content.stdout and f"skipped {n} up to date" in by_content.stdout
    assert snapshot(dst) == snapshot(src)


def test_rerun_never_nests_the_source(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "x.txt", b"x")
    for _ in range(2):
        out = forklift_copy(src, dst)
        assert out.returncode == 0, out.stderr
    assert sorted(os.listdir(dst)) == ["x.txt"]


def test_several_sources_land_by_name(tmp_path):
    write(tmp_path / "tree" / "t.txt", b"t")
    write(tmp_path / "single.txt", b"s", 0o600)
    os.symlink("single.txt", tmp_path / "alias")
    dst = tmp_path / "out"  # made by the copy
    out = forklift_copy(tmp_path / "tree", tmp_path / "single.txt", tmp_path / "alias", dst)
    assert out.returncode == 0, out.stderr
    assert sorted(os.listdir(dst)) == ["alias", "single.txt", "tree"]
    assert (dst / "tree" / "t.txt").read_bytes() == b"t"
    assert stat.S_IMODE(os.stat(dst / "single.txt").st_mode) == 0o600
    assert os.readlink(dst / "alias") == "single.txt"

    write(tmp_path / "other" / "tree" / "u.txt", b"u")
    clash = forklift_copy(tmp_path / "tree", tmp_path / "other" / "tree", tmp_path / "out2")
    assert clash.returncode == 2 and "both be copied" in clash.stderr


def test_single_file_to_new_name_and_into_directory(tmp_path):
    write(tmp_path / "f.txt", b"data", 0o604)
    assert forklift_copy(tmp_path / "f.txt", tmp_path / "g.txt").returncode == 0
    os.mkdir(tmp_path / "d")
    assert forklift_copy(tmp_path / "f.txt", tmp_path / "d").returncode == 0
    for copy in (tmp_path / "g.txt", tmp_path / "d" / "f.txt"):
        st = os.stat(copy)
        assert copy.read_bytes() == b"data" and stat.S_IMODE(st.st_mode) == 0o604 and st.st_mtime_ns == MTIME


def test_follow_symlinks_copies_targets_and_stops_at_loops(tmp_path):
    src = tmp_path / "src"
    write(src / "real" / "r.txt", b"r")
    os.symlink("real", src / "dir_link")
    os.symlink("real/r.txt", src / "file_link")
    os.symlink("..", src / "real" / "loop")  # src/real/loop -> src: a cycle
    report = copier.copy_tree(src, tmp_path / "dst", workers=2, follow_symlinks=True)
    assert not os.path.islink(tmp_path / "dst" / "dir_link")
    assert (tmp_path / "dst" / "dir_link" / "r.txt").read_bytes() == b"r"
    assert (tmp_path / "dst" / "file_link").read_bytes() == b"r"
    assert [e.message for e in report.errors] == ["symlink loop: a directory containing itself; skipped"] * 2


def test_stale_temp_files_of_a_killed_run_are_removed(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "a.txt", b"a")
    write(dst / ".a.txt.forklift-0badf00d.tmp", b"half")
    write(dst / ".keep.forklift-notmine.tmp", b"not our pattern")
    report = copier.copy_tree(src, dst, workers=1)
    assert report.ok
    assert sorted(os.listdir(dst)) == [".keep.forklift-notmine.tmp", "a.txt"]


# -- the walk runs in the workers: one task per directory ----------------------------------------
def test_a_directory_task_copies_its_first_files_and_hands_out_the_rest(tmp_path, monkeypatch):
    """Past BATCH_FILES files, and for any file of BATCH_BYTES or more, a directory task gives
    the work back as batches, so one huge directory is still copied by every worker."""
    monkeypatch.setattr(worker, "BATCH_FILES", 10)
    monkeypatch.setattr(worker, "BATCH_BYTES", 1 << 20)
    src, dst = tmp_path / "src", tmp_path / "dst"
    for i in range(25):
        write(src / f"f{i:02d}", b"x" * i)
    write(src / "big", b"b" * (1 << 20))
    write(src / "sub" / "inner", b"inner")
    os.symlink("f01", src / "link")
    opts = run._Options("0badcafe", False, False, False, os.geteuid() == 0)
    copied, nbytes, same, _, errors, fatal, info = worker._copy_dir(str(src), str(dst), (), opts)
    record, subdirs, deferred, splits, found, found_bytes, made = info
    assert errors == [] and fatal is None and same == 0 and made == 1 and splits == []
    assert record[0] == str(dst) and record[1].st_ino == os.lstat(src).st_ino
    assert subdirs == [("dir", str(src / "sub"), str(dst / "sub"), ((record[1].st_dev, record[1].st_ino),))]
    assert copied == 10 and found == 27  # 25 files, the symlink, the big file
    batches = [[ent[0] for _, _, ents in task[1] for ent in ents] for task in deferred]
    assert ["big"] in batches  # alone
    rest = sorted(n for b in batches if b != ["big"] for n in b)
    assert len(rest) == 27 - 10 - 1 and all(len(b) <= 10 for b in batches)
    done = set(os.listdir(dst))
    assert len(done) == 10 and not done & set(rest) and "big" not in done
    assert found_bytes == sum(range(25)) + (1 << 20) and nbytes == sum(os.path.getsize(dst / n) for n in done)
    for task in [*deferred, *subdirs]:  # run as other tasks, they finish the tree
        worker._run_task(task, opts)
    assert sorted(os.listdir(dst)) == sorted(os.listdir(src)) and temp_files(dst) == []


@pytest.mark.parametrize("deaths", [1, 2])
def test_a_worker_dying_in_a_directory_task_is_retried_once(tmp_path, monkeypatch, deaths):
    """Its directory runs again (what the dead worker copied is then skipped); twice dead, it
    is reported and the rest of the tree is still copied, with no temp file left."""
    monkeypatch.setattr(run, "IN_PROCESS_SECONDS", 0.0)  # the workers die, not this process
    src, dst = tmp_path / "src", tmp_path / "dst"
    for d in ("a", "b"):
        for i in range(20):
            write(src / d / f"f{i:02d}", os.urandom(100 + i))
    marks = tmp_path / "marks"
    marks.mkdir()
    real_copy_data = worker._copy_data

    def copy_data(fi, fo, size):  # dies with f10's temp file made, f00-f09 already in place
        target = os.readlink(f"/proc/self/fd/{fo}")
        if "/b/.f10.forklift-" in target and len(os.listdir(marks)) < deaths:
            (marks / str(os.getpid())).touch()
            os._exit(9)
        return real_copy_data(fi, fo, size)

    monkeypatch.setattr(worker, "_copy_data", copy_data)
    monkeypatch.setattr(run, "_start_method", lambda: "fork")  # the workers run the patched copy
    report = copier.copy_tree(src, dst, workers=2)
    assert len(os.listdir(marks)) == deaths
    assert temp_files(dst) == []
    assert contents(dst / "a") == contents(src / "a")
    if deaths == 1:
        assert report.ok, report.errors
        assert snapshot(dst) == snapshot(src)
        assert report.files_copied + report.files_skipped == 40
    else:
        assert [(e.path, e.message.split(":")[0]) for e in report.errors] == [
            (str(src / "b"), "directory not copied (its worker died twice)")
        ]


def test_big_file_is_split_into_ranges_and_identical(tmp_path, monkeypatch):
    monkeypatch.setattr(walk, "SPLIT_BYTES", 1 << 20)
    monkeypatch.setattr(walk, "RANGE_BYTES", 256 << 10)
    splits = []
    real_split = walk._Walker._split

    def spy(self, src, *args):
        splits.append(src)
        return real_split(self, src, *args)

    monkeypatch.setattr(walk._Walker, "_split", spy)
    src = tmp_path / "src"
    write(src / "big.bin", os.urandom(5 * (1 << 20) + 12_345), 0o640)
    write(src / "small.bin", os.urandom(1000))
    report = copier.copy_tree(src, tmp_path / "dst", workers=2, verify=True)
    assert report.ok, report.errors
    assert splits == [str(src / "big.bin")]  # 21 ranges
    assert report.files_copied == 2 and report.bytes_copied == 5 * (1 << 20) + 12_345 + 1000
    assert snapshot(tmp_path / "dst") == snapshot(src)


def test_verify_fsync_and_progress_options(tmp_path, capsys):
    src = tmp_path / "src"
    make_tree(src)
    report = copier.copy_tree(src, tmp_path / "dst", workers=2, verify=True, fsync=True, progress=True)
    assert report.ok, report.errors
    assert snapshot(tmp_path / "dst") == snapshot(src)


def bytes_per_second(text):
    """The ``N files/s, X MB/s`` rate in a progress line or a summary, in bytes per second."""
    found = re.search(r"[\d,]+ files/s, ([\d.,]+) (B|kB|MB|GB)/s", text)
    if found is None:
        return None
    return float(found.group(1).replace(",", "")) * 1000 ** ["B", "kB", "MB", "GB"].index(found.group(2))


def test_the_progress_rate_is_the_summarys(tmp_path, capsys):
    """The bar showed rich's speed (the last few updates, the first left out): 28.6 MB/s
    against the summary's 368 MB/s, or ``?``. Now both are copied bytes over the copy's time."""
    src = tmp_path / "src"
    make_tree(src)
    write(src / "big.bin", os.urandom(3 << 20))
    report = copier.copy_tree(src, tmp_path / "dst", workers=2, progress=True)
    assert report.ok, report.errors
    bar = capsys.readouterr().err.strip().splitlines()[-1]  # rich's last frame, stderr not a terminal
    shown, summary = bytes_per_second(bar), bytes_per_second(report.summary())
    assert shown is not None and summary is not None, (bar, report.summary())
    ratio = shown / summary
    assert 0.5 < ratio < 2, (bar, report.summary())  # the same up to the last moments of the copy


def test_the_progress_line_says_what_the_scan_does_and_the_time_left():
    from forklift._copy import display

    fake = SimpleNamespace(walker=SimpleNamespace(done=False), found_files=500, found_bytes=0, done_files=0)
    assert display.eta(fake, 2.0) == "scanning: 250 files/s found"
    fake.walker.done, fake.found_bytes, fake.done_bytes = True, 1000, 250
    assert display.eta(fake, 10.0) == "eta 0:00:30"  # a quarter in 10 s: 30 s left at that pace
    fake.done_bytes = 1000
    assert display.eta(fake, 10.0) == ""


def test_the_progress_line_is_redrawn_while_an_up_to_date_tree_is_scanned(tmp_path, monkeypatch):
    from forklift._copy import run

    src = tmp_path / "src"
    make_tree(src)
    assert copier.copy_tree(src, tmp_path / "dst", workers=2).ok
    scanning = []  # an up-to-date tree gives the pool no task until the walk ends: still redrawn

    class Display:
        def __init__(self, *started):
            pass

        def update(self, r, force=False):
            scanning.append(not r.walker.done and r.found_files > 0)

        def close(self, r):
            pass

    monkeypatch.setattr(run, "_Display", Display)
    report = copier.copy_tree(src, tmp_path / "dst", workers=2, progress=True)
    assert report.files_copied == 0 and report.files_skipped > 0
    assert any(scanning)


# -- a source that changes between the walk and its copy ---------------------------------------
def change_after_the_walk(monkeypatch, src, name, change):
    """Run ``change(path)`` on source file ``src/name`` after it is stat'ed, before its data is copied.

    A whole file: in the task that copies it (the workers are forked, so they run the
    patched function too), between its fstat and the copy of its data. A file cut in
    ranges: when the parent cuts it, before any range is copied.
    """
    real_copy = worker._copy_opened

    def copy_opened(fi, dfd, ent, opts, owner):
        if ent[0] == name:
            change(os.path.join(src, name))
        return real_copy(fi, dfd, ent, opts, owner)

    monkeypatch.setattr(worker, "_copy_opened", copy_opened)
    real_split = walk._Walker._split

    def split(self, path, dst_dir, dname, st):
        due = real_split(self, path, dst_dir, dname, st)
        if os.path.basename(path) == name:
            change(path)
        return due

    monkeypatch.setattr(walk._Walker, "_split", split)
    # Forked workers run the patched function; forklift's default (forkserver, chosen when
    # other tests left threads running) would import the module afresh.
    monkeypatch.setattr(run, "_start_method", lambda: "fork")


def split_small(monkeypatch):
    monkeypatch.setattr(walk, "SPLIT_BYTES", 1 << 20)
    monkeypatch.setattr(walk, "RANGE_BYTES", 256 << 10)


@pytest.mark.parametrize("split", [False, True], ids=["whole", "ranges"])
def test_a_file_that_grows_is_copied_whole_and_recopied_next_run(tmp_path, monkeypatch, split):
    """As cp, which copies to end of file: never a copy cut at the walk's size under the final name."""
    size = 5 * (1 << 20) + 12_345 if split else 70_000
    if split:
        split_small(monkeypatch)
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "log", os.urandom(size))
    write(src / "other", b"unchanged")
    grown = os.urandom(300_000)

    def append(path):
        with open(path, "ab") as f:
            f.write(grown)

    change_after_the_walk(monkeypatch, src, "log", append)
    report = copier.copy_tree(src, dst, workers=2, verify=True)
    assert report.ok, report.errors
    assert digest(dst / "log") == digest(src / "log") and os.path.getsize(dst / "log") == size + len(grown)
    assert report.files_copied == 2 and report.bytes_copied == size + len(grown) + len(b"unchanged")
    # Stamped with the walk's mtime, older than its data: the next run copies it again.
    assert os.stat(dst / "log").st_mtime_ns == MTIME != os.stat(src / "log").st_mtime_ns
    monkeypatch.undo()
    again = copier.copy_tree(src, dst, workers=2)
    assert again.ok and again.files_copied == 1 and again.files_skipped == 1
    assert snapshot(dst) == snapshot(src) and temp_files(dst) == []


@pytest.mark.parametrize("split", [False, True], ids=["whole", "ranges"])
def test_a_file_that_shrinks_is_reported_and_never_given_its_name(tmp_path, monkeypatch, capsys, split):
    size = 5 * (1 << 20) + 12_345 if split else 70_000
    if split:
        split_small(monkeypatch)
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "log", os.urandom(size))
    write(src / "other", b"unchanged")
    change_after_the_walk(monkeypatch, src, "log", lambda path: os.truncate(path, size - 1000))
    from forklift.cli.main import main

    assert main(["copy", "-q", "-j", "2", str(src), str(dst)]) == 1
    err = capsys.readouterr().err
    assert f"{src / 'log'}: changed while being copied" in err and "1 error" in err and "Traceback" not in err
    assert sorted(os.listdir(dst)) == ["other"]  # no truncated copy, no temp file


def test_a_file_that_grows_then_shrinks_while_copied_is_reported(tmp_path):
    fi = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    os.write(fi, b"x" * 100)
    with pytest.raises(worker._StepError, match="changed while being copied"):
        worker._copy_growth(fi, 60, lambda extra: extra - 1)  # 40 bytes more, one gone meanwhile
    assert worker._copy_growth(fi, 100, lambda extra: pytest.fail("nothing to copy")) == 0
    os.close(fi)


# -- refusals and errors -----------------------------------------------------------------------
def test_missing_source_and_destination_inside_source_exit_2(tmp_path):
    write(tmp_path / "src" / "a", b"a")
    missing = forklift_copy(tmp_path / "nope", tmp_path / "dst")
    inside = forklift_copy(tmp_path / "src", tmp_path / "src" / "dst")
    deeper = forklift_copy(tmp_path / "src", tmp_path / "src" / "sub" / "dst")
    itself = forklift_copy(tmp_path / "src", tmp_path / "src")
    for out, words in (
        (missing, "No such file or directory"),
        (inside, "into itself"),
        (deeper, "into itself"),
        (itself, "are the same"),
    ):
        assert out.returncode == 2, out
        assert words in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
        cli_output_ok(out)
    assert sorted(os.listdir(tmp_path)) == ["src"] and sorted(os.listdir(tmp_path / "src")) == ["a"]
    for caught in (copier.CopyUsageError, forklift.ForkliftError, ValueError):
        with pytest.raises(caught, match="No such file or directory"):
            copier.copy_tree(tmp_path / "nope", tmp_path / "dst")


def test_destination_symlink_to_a_directory_is_filled(tmp_path):
    write(tmp_path / "src" / "d" / "f", b"f")
    os.mkdir(tmp_path / "real")
    os.symlink("real", tmp_path / "link")
    out = forklift_copy(tmp_path / "src", tmp_path / "link")
    assert out.returncode == 0, out
    assert (tmp_path / "real" / "d" / "f").read_bytes() == b"f"
    assert os.path.islink(tmp_path / "link")


def test_file_into_a_path_that_is_not_a_directory_exits_2(tmp_path):
    write(tmp_path / "f", b"f")
    write(tmp_path / "x", b"x")
    out = forklift_copy(tmp_path / "f", str(tmp_path / "x") + "/")
    assert out.returncode == 2 and "is not a directory" in out.stderr, out
    assert (tmp_path / "x").read_bytes() == b"x"


def test_a_source_named_like_a_temp_file_is_reported_not_copied(tmp_path):
    write(tmp_path / "src" / "ok", b"ok")
    write(tmp_path / "src" / copier.temp_name("x", "deadbeef"), b"looks like ours")
    report = copier.copy_tree(tmp_path / "src", tmp_path / "dst", workers=1)
    assert [e.path for e in report.errors] == [str(tmp_path / "src" / copier.temp_name("x", "deadbeef"))]
    assert os.listdir(tmp_path / "dst") == ["ok"]


def test_bad_option_exits_2():
    out = forklift_copy("-j", "0", "a", "b")
    assert out.returncode == 2 and "at least 1" in out.stderr


def _as_unprivileged():
    """A command prefix under which chmod 000 really denies access (root normally bypasses it)."""
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv to drop root's CAP_DAC_OVERRIDE")
    return ("setpriv", "--bounding-set", "-dac_override,-dac_read_search")


def test_unreadable_file_dir_and_fifo_are_reported_and_the_rest_copied(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "ok.txt", b"fine")
    write(src / "secret.txt", b"no", 0o000)
    write(src / "locked" / "inner.txt", b"hidden")
    os.chmod(src / "locked", 0o000)
    os.mkfifo(src / "pipe")
    write(src / "zzz" / "after.txt", b"after the errors")
    try:
        out = forklift_copy(src, dst, "-j", "2", prefix=_as_unprivileged())
    finally:
        os.chmod(src / "locked", 0o755)
    cli_output_ok(out)
    assert out.returncode == 1, out
    errors = [line for line in out.stderr.splitlines() if line.startswith("forklift copy: /")]
    assert len(errors) == 3, out.stderr
    assert any("secret.txt: cannot open: Permission denied" in e for e in errors)
    assert any("locked: cannot read directory: Permission denied" in e for e in errors)
    assert any("pipe: not copied: a FIFO" in e for e in errors)
    assert "3 errors" in out.stderr
    assert (dst / "ok.txt").read_bytes() == b"fine"
    assert (dst / "zzz" / "after.txt").read_bytes() == b"after the errors"
    assert not os.path.exists(dst / "secret.txt") and temp_files(dst) == []


def test_disk_full_stops_cleanly(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mnt = tmp_path / "small_fs"
    os.mkdir(mnt)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        src = tmp_path / "src"
        for i in range(12):
            write(src / f"f{i:02d}.bin", os.urandom(700_000))
        out = forklift_copy(src, mnt / "dst", "-j", "2")
        cli_output_ok(out)
        assert out.returncode == 1, out
        assert "No space left on device" in out.stderr and "stopped" in out.stderr
        assert temp_files(mnt) == []
        copied = os.listdir(mnt / "dst")
        assert 0 < len(copied) < 12
        assert stat.S_IMODE(os.stat(mnt / "dst").st_mode) == stat.S_IMODE(os.stat(src).st_mode)  # not 0700
        for name in copied:  # whatever has a final name is complete
            assert digest(mnt / "dst" / name) == digest(src / name)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


# -- interruptions -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def big_tree(tmp_path_factory):
    """~190 MB: 6 files of 24 MB and 2,000 small ones; slow enough to interrupt half way."""
    root = tmp_path_factory.mktemp("interrupt") / "src"
    block = os.urandom(1 << 20)
    for i in range(6):
        write(root / "big" / f"b{i}.bin", b"%d" % i + block * 24)
    for i in range(2000):
        write(root / f"d{i % 20:02d}" / f"s{i:04d}", os.urandom(1000 + i))
    return root


def start_copy_and_wait_for_a_temp_file(src, dst):
    proc = subprocess.Popen(
        [sys.executable, "-m", "forklift", "copy", "-q", "-j", "2", "--fsync", str(src), str(dst)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while not (os.path.isdir(dst) and temp_files(dst)):
        assert proc.poll() is None, f"the copy ended before a temp file was seen: {proc.communicate()}"
        assert time.monotonic() < deadline, "no temp file appeared"
        time.sleep(0.001)
    return proc


def wait_gone(pids, timeout=10):
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.01)
        else:
            raise AssertionError(f"process {pid} still alive")


def assert_no_partial_files(src, dst):
    want = contents(src)
    for rel, h in contents(dst).items():
        assert want[rel] == h, f"{rel} carries a final name but differs from its source"


def test_sigkill_then_rerun_is_byte_identical_with_no_temp_files(big_tree, tmp_path):
    dst = tmp_path / "dst"
    proc = start_copy_and_wait_for_a_temp_file(big_tree, dst)
    workers = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
    proc.kill()
    proc.wait()
    wait_gone(workers)  # they die with their parent
    assert contents(dst) != contents(big_tree), "the copy was not interrupted"
    assert_no_partial_files(big_tree, dst)

    out = forklift_copy(big_tree, dst, "-j", "2")
    assert out.returncode == 0, out.stderr
    assert contents(dst) == contents(big_tree)
    assert temp_files(dst) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_removes_temp_files_and_exits_130(big_tree, tmp_path, sig):
    dst = tmp_path / "dst"
    proc = start_copy_and_wait_for_a_temp_file(big_tree, dst)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert temp_files(dst) == []
    assert_no_partial_files(big_tree, dst)
