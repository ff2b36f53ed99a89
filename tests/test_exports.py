"""The public surface: what forklift exports, each name real and documented."""

import forklift
from forklift import errors


def test_all_names_exist_and_are_documented():
    for name in forklift.__all__:
        obj = getattr(forklift, name)
        if name != "__version__":
            assert obj.__doc__, f"forklift.{name} has no docstring"


def test_surface_is_what_we_intend():
    assert set(forklift.__all__) == {
        "Array",
        "AsyncResult",
        "AuthenticationError",
        "Barrier",
        "BoundedSemaphore",
        "BrokenPoolError",
        "ClusterError",
        "ClusterEvent",
        "ClusterLock",
        "ClusterQueue",
        "ClusterSemaphore",
        "ClusterValue",
        "Condition",
        "CopyReport",
        "Event",
        "Executor",
        "ForkliftError",
        "IMapIterator",
        "JoinableQueue",
        "JournalError",
        "KillResult",
        "Lock",
        "Manager",
        "Pipe",
        "Pool",
        "Process",
        "Queue",
        "RLock",
        "RemoteError",
        "RemoteTraceback",
        "Semaphore",
        "SerializationError",
        "SharedArray",
        "SharingError",
        "SimpleQueue",
        "Statistics",
        "TaskTimeout",
        "Value",
        "WorkerLostError",
        "__version__",
        "active_children",
        "copy_tree",
        "cpu_count",
        "current_process",
        "get_context",
        "kill_tree",
        "parent_process",
        "shared_array",
    }


def test_lazy_exports_match_all():
    assert set(forklift._EXPORTS) | {"__version__"} == set(forklift.__all__)
    assert set(dir(forklift)) >= set(forklift.__all__)


def test_import_forklift_loads_no_tool_until_it_is_used():
    import subprocess
    import sys

    tools = ("forklift.copier", "forklift._copy", "forklift.report", "forklift._report")
    code = (
        "import sys, forklift\n"
        f"print(sorted(m for m in sys.modules if m.startswith({tools!r})))\n"
        "forklift.copy_tree\n"
        "print(sorted(m for m in sys.modules if m.startswith('forklift._copy.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    before, after = out.stdout.splitlines()
    assert before == "[]"
    assert "'forklift._copy.run'" in after  # the public name reaches the private package


def test_errors_subclass_the_standard_library():
    import multiprocessing.pool
    import pickle
    from concurrent.futures.process import BrokenProcessPool

    assert issubclass(errors.TaskTimeout, TimeoutError)
    assert issubclass(errors.WorkerLostError, OSError)
    assert issubclass(errors.SerializationError, pickle.PickleError)
    assert issubclass(errors.ResultSerializationError, errors.SerializationError)
    assert issubclass(errors.ResultSerializationError, multiprocessing.pool.MaybeEncodingError)
    assert issubclass(errors.RemoteTraceback, multiprocessing.pool.RemoteTraceback)
    assert issubclass(errors.BrokenPoolError, BrokenProcessPool)
    assert issubclass(errors.SharingError, OSError)
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), Exception)


def test_copy_usage_error_is_a_forklift_error_and_still_a_value_error():
    from forklift import copier

    assert copier.CopyUsageError is errors.CopyUsageError  # defined in errors, public where it was
    assert issubclass(errors.CopyUsageError, errors.ForkliftError)
    assert issubclass(errors.CopyUsageError, ValueError)  # `except ValueError` keeps catching it


def test_worker_lost_error_pickles_with_its_fields():
    import pickle

    err = errors.WorkerLostError("boom", pid=12, exitcode=-9)
    back = pickle.loads(pickle.dumps(err))
    assert (back.pid, back.exitcode, back.signal, str(back)) == (12, -9, 9, "boom")


def test_describe_exit_names_the_likely_cause():
    assert "out of memory" in errors.describe_exit(-9)
    assert "segmentation fault" in errors.describe_exit(-11)
    assert "code 3" in errors.describe_exit(3)
