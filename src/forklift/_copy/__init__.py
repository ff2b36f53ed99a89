"""The copier behind ``forklift.copy_tree`` and ``forklift copy``; its public face is :mod:`forklift.copier`.

Data path::

    parent, main thread                                     workers (forklift.Pool)
    -------------------                                     -----------------------
    _plan       SRC... DST -> [(source, target)], checks
    _Walker     a "dir" task per source directory,   ---->  _copy_dir: scandir, mkdir target
                a "batch" for single files                   (or read its entries and remove
                                                             stale temp files), per file open,
                                                             fstat, create temp, copy_file_range,
                                                             fchown/fchmod, futimens, rename;
                                                             quick check when the target existed
    _Run        pending tasks (a stack), apply_async,   <----  counts, errors, fatal errno, and:
                <= IN_FLIGHT tasks per worker;               subdirectories as "dir" tasks,
                results (a queue fed by the pool's           files past BATCH_FILES and big ones
                callbacks) -> counts, progress, errors;      as "batch" tasks, files to split
                more tasks -> pending
                big files to split -> "range" tasks;  ---->  _copy_range: one slice of a big
                the parent made their temp file              file into its temp
                finishes split files (times, mode, rename)
    end         directories' owner, mode, times (deepest first)

Modules:

- ``common``: what both sides share: the options, task and result shapes, temp names;
- ``outcome``: what a copy returns (CopyReport, FileError);
- ``plan``: which source goes to which target, and what is refused;
- ``worker``: the pool's task function: directories (the walk), batches of files, ranges;
- ``walk``: the parent's side: each source's first task, big files cut into ranges;
- ``run``: ``copy_tree`` and the parent's loop: feeds the pool, collects, cleans up;
- ``display``: the progress line.

Invariants:

- No file ever carries its final name before it is complete: data goes to
  ``.NAME.forklift-TOKEN.tmp`` in the target directory (TOKEN: 8 hex digits,
  new per run) and is renamed into place after its data, owner, mode and times.
- The walk runs in the workers, a task per directory: the parent's cost is
  per directory, not per file, and scanning never delays the first copy.
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
