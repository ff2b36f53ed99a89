"""The copier behind ``forklift.copy_tree`` and ``forklift copy``; its public face is :mod:`forklift.copier`.

Data path::

    parent, main thread                                     workers (forklift.Pool)
    -------------------                                     -----------------------
    _plan       SRC... DST -> [(source, target)], checks
    _Walker     os.scandir + lstat, depth first; mkdir;
                quick check against the target's entries;
                removes stale temp files of earlier runs
                small files + symlinks -> "batch" tasks  ---->  _copy_batch: per file open,
                  (<= BATCH_FILES files, <= BATCH_BYTES)         create temp, copy_file_range,
                big files -> "range" tasks; the parent   ---->   fchown/fchmod, futimens,
                  made their temp file                           rename (dir fds throughout)
    _Run        apply_async, <= IN_FLIGHT tasks per worker;     _copy_range: one slice of a
                results (a queue fed by the pool's callbacks)    big file into its temp
                -> counts, progress, errors;             <----  counts, errors, fatal errno
                finishes big files (times, mode, rename)
    end         directories' owner, mode, times (deepest first)

Modules:

- ``common``: what both sides share: the options, task and result shapes, temp names;
- ``outcome``: what a copy returns (CopyReport, FileError);
- ``plan``: which source goes to which target, and what is refused;
- ``worker``: the pool's task function: batches of small files, ranges of big ones;
- ``walk``: the parent's walk of the sources, which cuts the work into tasks;
- ``run``: ``copy_tree`` and the parent's loop: feeds the pool, collects, cleans up;
- ``display``: the progress line.

Invariants:

- No file ever carries its final name before it is complete: data goes to
  ``.NAME.forklift-TOKEN.tmp`` in the target directory (TOKEN: 8 hex digits,
  new per run) and is renamed into place after its data, owner, mode and times.
- The walk streams: a batch goes to the workers as soon as it is full, so
  scanning a large tree never delays the first copy.
- Batches are cut by bytes as well as files, and any file of BATCH_BYTES or
  more travels alone, so no worker is handed every big file.
- Every temp file is removed on every way out except SIGKILL of the parent:
  workers remove their own on errors; after Ctrl-C / SIGTERM the parent kills
  the workers, waits until they are gone, then removes the temp names of the
  tasks that were in flight. After a SIGKILL, the next run deletes names of the
  temp pattern in each target directory it scans.
- ENOSPC, EDQUOT and EROFS stop the whole copy (every further file would fail
  the same way); any other error fails one file, which is reported, and the
  copy goes on.
"""
