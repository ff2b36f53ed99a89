"""What a copy returns: :class:`CopyReport` and its :class:`FileError` rows."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FileError:
    """One file or directory that was not copied, and why."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class CopyReport:
    """What :func:`copy` did.

    ``files_copied`` counts regular files and symlinks written; ``files_skipped``
    those already up to date in the destination (same size and mtime, or same
    content with ``checksum``). ``errors`` lists what failed; ``stopped`` says
    why the copy stopped early (disk full), else None.
    """

    files_copied: int = 0
    bytes_copied: int = 0
    files_skipped: int = 0
    bytes_skipped: int = 0
    dirs: int = 0
    errors: list[FileError] = field(default_factory=list)
    stopped: str | None = None
    seconds: float = 0.0

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
