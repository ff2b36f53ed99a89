"""Planning: which source is copied to which target path, and what is refused before any write."""

from __future__ import annotations

import os
import stat
from typing import NamedTuple

from .._errors import CopyUsageError


class _Pair(NamedTuple):
    source: str
    target: str
    is_dir: bool


def _plan(sources: list[str], dst: str, follow: bool) -> list[_Pair]:
    """Map each source to its target path; refuse what cannot be copied (CopyUsageError)."""
    if not sources:
        raise CopyUsageError("no source given")
    if not dst:
        raise CopyUsageError("no destination given")
    kinds = [_source_kind(s, follow) for s in sources]
    dst_is_dir = os.path.isdir(dst)
    if len(sources) == 1:
        src, is_dir = sources[0], kinds[0]
        if is_dir:
            if os.path.lexists(dst) and not dst_is_dir:
                raise CopyUsageError(f"cannot copy directory '{src}': '{dst}' exists and is not a directory")
            # A DST that is a symlink to a directory: fill the directory it points to (as rsync).
            target = os.path.realpath(dst) if os.path.islink(dst) else dst
        elif dst_is_dir or dst.endswith(os.sep):
            if os.path.lexists(dst.rstrip(os.sep) or os.sep) and not dst_is_dir:
                raise CopyUsageError(f"cannot copy '{src}' into '{dst}': it exists and is not a directory")
            target = os.path.join(dst, _base_name(src))
        else:
            target = dst
        pairs = [_Pair(src, target, is_dir)]
    else:
        if os.path.lexists(dst) and not dst_is_dir:
            raise CopyUsageError(f"'{dst}' is not a directory (needed for several sources)")
        pairs = [_Pair(s, os.path.join(dst, _base_name(s)), k) for s, k in zip(sources, kinds)]
        seen: dict[str, str] = {}
        for p in pairs:
            if p.target in seen:
                raise CopyUsageError(
                    f"'{seen[p.target]}' and '{p.source}' would both be copied to '{p.target}'"
                )
            seen[p.target] = p.source
    for p in pairs:
        _check_not_inside(p)
    _check_parent(dst)
    return pairs


def _source_kind(src: str, follow: bool) -> bool:
    """True for a directory source; CopyUsageError when it does not exist."""
    try:
        st = os.stat(src) if follow else os.lstat(src)
    except OSError as e:
        raise CopyUsageError(f"cannot copy '{src}': {e.strerror}") from None
    return stat.S_ISDIR(st.st_mode)


def _base_name(path: str) -> str:
    name = os.path.basename(os.path.normpath(path))
    if name in ("", ".", ".."):
        name = os.path.basename(os.path.abspath(path))
    return name or "root"


def _check_parent(path: str) -> None:
    parent = os.path.dirname(os.path.abspath(path.rstrip(os.sep) or os.sep))
    if not os.path.isdir(parent):
        raise CopyUsageError(f"cannot create '{path}': directory '{parent}' does not exist")


def _check_not_inside(pair: _Pair) -> None:
    src = os.path.realpath(pair.source)
    target = os.path.realpath(pair.target)
    if src == target:
        raise CopyUsageError(f"'{pair.source}' and '{pair.target}' are the same")
    if pair.is_dir and os.path.commonpath([src, target]) == src:
        raise CopyUsageError(f"cannot copy '{pair.source}' into itself: '{pair.target}' is inside it")
