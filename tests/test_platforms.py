"""Another platform, simulated on Linux: ``import forklift`` works, a Linux-only part says why it
cannot run, in one clear error (never a traceback from deep inside), and the CLI exits 2.

The simulation runs in a fresh interpreter whose ``sys.platform`` is "darwin" and whose ``os``
lacks ``memfd_create`` and ``pidfd_open``, as on macOS, before forklift is imported.
"""

import subprocess
import sys
import textwrap

import pytest

import forklift
from forklift import _platform
from forklift.errors import ForkliftError, PlatformError

PRELUDE = textwrap.dedent(
    """\
    import os, sys
    sys.platform = "darwin"
    for name in ("memfd_create", "pidfd_open"):
        delattr(os, name)
    """
)


def elsewhere(code, *args, timeout=60):
    return subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_error_is_a_forklift_error_and_an_os_error():
    assert issubclass(PlatformError, ForkliftError) and issubclass(PlatformError, OSError)
    assert PlatformError.__module__ == "forklift.errors"


@pytest.mark.parametrize(
    ("call", "what"),
    [
        ("forklift.Pool(2)", "a local forklift pool"),
        ("forklift.Executor(2)", "a local forklift pool"),
        ("forklift.Process(target=print).start()", "forklift.Process"),
        ("forklift.copy_tree('src', 'dst')", "forklift copy"),
        ("forklift.SharedArray((4,), 'float64')", "forklift's shared memory"),
    ],
)
def test_a_linux_only_part_raises_one_clear_error(call, what):
    out = elsewhere(
        f"""
        import forklift
        from forklift.errors import PlatformError
        if __name__ == "__main__":
            try:
                {call}
            except PlatformError as exc:
                print("PlatformError:", exc)
        """
    )
    assert out.returncode == 0, out.stderr
    message = out.stdout.strip()
    assert message.startswith(f"PlatformError: {what}") and "needs Linux" in message, message
    assert "this is darwin" in message and "Dask cluster" in message and "ProcessPoolExecutor" in message
    assert "Traceback" not in out.stderr


def test_import_and_the_parts_that_need_no_linux_still_work_there():
    out = elsewhere(
        """
        import forklift, forklift.errors, forklift.trees, forklift.journal, forklift.report
        print(forklift.__version__, forklift.kill_tree.__name__, forklift.cpu_count() >= 1)
        """
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [forklift.__version__, "kill_tree", "True"]


@pytest.mark.parametrize(
    "command", [["demo", "--tasks", "10"], ["run", "true", ":::", "a"], ["copy", ".", "x"]]
)
def test_the_cli_says_it_in_one_line_and_exits_2(command):
    out = elsewhere(
        """
        import sys
        from forklift.cli.main import main
        if __name__ == "__main__":
            sys.exit(main(sys.argv[1:]))
        """,
        *command,
    )
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"forklift {command[0]}: ") and "needs Linux" in lines[0]


def test_a_kernel_without_pidfd_open_is_named_with_its_version(monkeypatch):
    import errno
    import os

    def no_pidfd(pid):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    with pytest.raises(PlatformError, match=r"needs pidfd_open \(Linux 5\.3 or newer\); this kernel is "):
        _platform.require_call("pidfd_open", "forklift run", "5.3")


def test_a_kernel_without_memfd_create_is_named_with_its_version(monkeypatch):
    import errno
    import os

    from forklift._primitives import memfd

    def no_memfd(name, flags=0):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(os, "memfd_create", no_memfd)
    with pytest.raises(PlatformError, match=r"needs memfd_create \(Linux 3\.17 or newer\)"):
        memfd.Segment(4096)
