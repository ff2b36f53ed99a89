"""forklift copy: copy files and directory trees with several worker processes.

    forklift copy [options] SRC [SRC ...] DST

With one directory SRC, DST becomes its copy; if DST exists, running the same
command again completes or refreshes it (SRC is never nested inside DST, like
rsync's "SRC/ DST/"). With one file SRC, DST is the new file or an existing
directory to put it in. With several sources, each lands in DST/<its name>.

Kept: contents, modes, access and modification times (ns), owner and group
(when run as root), symlinks as symlinks (-L: what they point to), empty
directories. Not kept: hard links (each link becomes its own file), holes in
sparse files, ACLs and extended attributes. FIFOs, sockets and devices are
reported and not copied. Files in DST that are not in SRC are left alone.

Guarantees:
  - every file is written as .NAME.forklift-XXXXXXXX.tmp in its target
    directory and renamed into place only once complete (data, owner, mode,
    times), so no partial file ever carries a final name;
  - a rerun skips files whose size and mtime already match (rsync's quick
    check; --checksum compares contents instead) and removes the temp files
    an earlier run left behind if it was killed with SIGKILL;
  - Ctrl-C or SIGTERM stops the copy and removes its temp files (exit 130);
  - a full disk stops the copy cleanly with no temp files left (exit 1);
  - a file that grows while it is copied is copied to its new end (as cp
    does); one that shrinks is reported and never renamed into place;
  - directories get their modes and times after their contents, at the end.

Big files are split into ranges that several workers copy at once; small
files go to the workers in batches. Progress (files, bytes, rate, ETA,
errors) is drawn on stderr when it is a terminal; a one-line summary goes to
stdout at the end.
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from ._args import positive

EPILOG = """\
exit status:
  0    everything copied (or already up to date)
  1    some files were not copied (listed on stderr), or the disk filled up
  2    bad usage: SRC missing, DST inside SRC, DST not a directory, bad option
  130  interrupted (Ctrl-C or SIGTERM); temp files removed; rerun to finish

examples:
  forklift copy photos /mnt/backup/photos       # rerun: refreshes the copy
  forklift copy -j 8 --verify a.iso b.iso /mnt/usb
  forklift copy --checksum src dst              # compare contents, not mtimes
"""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "copy",
        help="copy files and trees with several processes (atomic renames, resumable)",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("sources", nargs="+", metavar="SRC", help="files or directories to copy")
    p.add_argument("dest", metavar="DST", help="the copy, or the directory to copy into")
    p.add_argument(
        "-j",
        "--jobs",
        type=positive,
        default=None,
        metavar="N",
        help="worker processes (default: the number of CPUs)",
    )
    p.add_argument(
        "-L",
        "--dereference",
        action="store_true",
        help="follow symlinks: copy what they point to instead of the links",
    )
    p.add_argument(
        "-c",
        "--checksum",
        action="store_true",
        help="skip a file only if its content matches the existing copy (default: size and mtime)",
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="re-read each new file and compare it with the source before renaming it into place "
        "(from the page cache; with --fsync, from the disk)",
    )
    p.add_argument(
        "--fsync",
        action="store_true",
        help="flush each file to disk before its rename, and each directory at the end (slower)",
    )
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress and no summary; errors are still printed",
    )
    p.set_defaults(func=run)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from .._errors import PlatformError
    from ..copier import CopyUsageError, copy_tree

    previous = signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM cleans up like Ctrl-C
    try:
        report = copy_tree(
            args.sources,
            args.dest,
            workers=args.jobs,
            follow_symlinks=args.dereference,
            checksum=args.checksum,
            verify=args.verify,
            fsync=args.fsync,
            progress=not args.quiet and sys.stderr.isatty(),
        )
    except (CopyUsageError, PlatformError) as e:
        print(f"forklift copy: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "forklift copy: interrupted; temporary files removed; run the same command again to finish",
            file=sys.stderr,
        )
        return 130
    except Exception as e:  # a bug, or the pool broke: one line, never a traceback
        print(f"forklift copy: failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    for err in report.errors:
        print(f"forklift copy: {err.path}: {err.message}", file=sys.stderr)
    if report.errors:
        n = len(report.errors)
        print(f"forklift copy: {n:,} {'error' if n == 1 else 'errors'} (listed above)", file=sys.stderr)
    if report.stopped is not None:
        print(
            f"forklift copy: stopped: {report.stopped}; temporary files removed; "
            "run the same command again to finish",
            file=sys.stderr,
        )
    if not args.quiet:
        print(report.summary())
    return 0 if report.ok else 1
