"""What a copy returns: :class:`CopyReport` and its :class:`FileError` rows."""

from __future__ import annotations

from typing import NamedTuple

# Not dataclasses: importing them (with inspect) costs ~6 ms, a sixth of a small copy's
# whole start-up.


class FileError(NamedTuple):
    """One file or directory that was not copied, and why."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


_FIELDS = (
    "files_copied",
    "bytes_copied",
    "files_skipped",
    "bytes_skipped",
    "dirs",
    "errors",
    "stopped",
    "seconds",
)


class CopyReport:
    """What :func:`copy` did.

    ``files_copied`` counts regular files and symlinks written; ``files_skipped``
    those already up to date in the destination (same size and mtime, or same
    content with ``checksum``). ``errors`` lists what failed; ``stopped`` says
    why the copy stopped early (disk full), else None. Compared by value.
    """

    __slots__ = _FIELDS

    def __init__(
        self,
        files_copied: int = 0,
        bytes_copied: int = 0,
        files_skipped: int = 0,
        bytes_skipped: int = 0,
        dirs: int = 0,
        errors: list[FileError] | None = None,
        stopped: str | None = None,
        seconds: float = 0.0,
    ) -> None:
        self.files_copied = files_copied
        self.bytes_copied = bytes_copied
        self.files_skipped = files_skipped
        self.bytes_skipped = bytes_skipped
        self.dirs = dirs
        self.errors: list[FileError] = [] if errors is None else errors
        self.stopped = stopped
        self.seconds = seconds

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in _FIELDS)
        return f"CopyReport({fields})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CopyReport):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in _FIELDS)

    __hash__ = None  # type: ignore[assignment]  # mutable, as a dataclass's

    @property
    def ok(self) -> bool:
        """True when everything was copied (or already up to date)."""
        return not self.errors and self.stopped is None

    def summary(self) -> str:
        """One line for humans: counts, sizes, speed, errors."""
        parts = [
            f"copied {_count(self.files_copied, 'file')} ({_human(self.bytes_copied)})",
            f"skipped {self.files_skipped:,} up to date ({_human(self.bytes_skipped)})",
            f"made {_count(self.dirs, 'directory', 'directories')}",
            _count(len(self.errors), "error"),
        ]
        speed = rate(self.files_copied, self.bytes_copied, self.seconds)
        return f"{', '.join(parts)} in {self.seconds:.2f} s ({speed})"


def rate(files: int, nbytes: int, seconds: float) -> str:
    """What was copied per second of the whole copy: the summary's rate, and the progress bar's."""
    secs = max(seconds, 1e-9)
    return f"{files / secs:,.0f} files/s, {_human(nbytes / secs)}/s"


def _count(n: int, one: str, many: str = "") -> str:
    return f"{n:,} {one if n == 1 else many or one + 's'}"


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} TB"
