"""Big buffers through shared memory: automatic transport in the pool, and SharedArray."""

import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import forklift
from forklift import SharedArray
from forklift.errors import SharingError

import shm_tasks as T

MIB = 1 << 20


def forklift_segments_in_dev_shm():
    return [n for n in os.listdir("/dev/shm") if "forklift" in n]


# -- automatic transport of big arguments and results ------------------------------------


def test_big_arrays_cross_both_ways(start_method):
    a = np.arange(MIB, dtype=np.float64)  # 8 MiB
    with forklift.Pool(2, start_method=start_method) as p:
        assert p.map(T.total, [a, a[::-1].copy()]) == [float(a.sum())] * 2
        out = p.map(T.full, [MIB, 10])
    assert out[0].shape == (MIB,) and float(out[0].sum()) == 2.0 * MIB
    assert out[0].flags.writeable  # a result is the caller's own array, as with pickle
    out[0][0] = 7.0
    assert out[1].tolist() == [2.0] * 10


def test_a_task_may_write_to_its_argument_without_touching_the_callers(pool):
    a = np.ones(MIB)
    assert pool.map(T.add_one_in_place, [a, a]) == [2.0 * MIB] * 2
    assert float(a.sum()) == MIB  # the caller's array is unchanged, as with pickling


def test_big_bytes_and_bytearray_cross_both_ways(pool):
    args = [b"x" * (3 * MIB), bytearray(2 * MIB)]
    assert pool.map(T.length_and_head, args) == [
        ("bytes", 3 * MIB, b"xxx"),
        ("bytearray", 2 * MIB, b"\0\0\0"),
    ]
    assert pool.apply(T.make_bytes, (5 * MIB,)) == b"r" * (5 * MIB)


def test_an_argument_kept_by_the_task_is_not_overwritten_by_later_sends():
    with forklift.Pool(1) as p:
        p.map(T.keep, [np.full(MIB, 1.0)])
        for value in (2.0, 3.0, 4.0):  # the pool reuses spare segments for these
            assert p.map(T.total, [np.full(MIB, value)]) == [value * MIB]
        firsts, lasts = p.apply(T.first_kept)
    assert firsts == [1.0] and lasts == [1.0]


def test_task_errors_and_retries_with_big_arguments(tmp_path):
    a = np.ones(2 * MIB)
    with forklift.Pool(2) as p:
        with pytest.raises(ValueError, match="bad array of 2097152"):
            p.apply(T.fail_with, (a,))
        marker = str(tmp_path / "died")
        assert p.apply(T.die_once, (a, marker), retries=1) == 2.0 * MIB
        assert p.map(T.total, [a]) == [2.0 * MIB]


def test_no_descriptor_or_dev_shm_leak_over_many_maps():
    before_shm = forklift_segments_in_dev_shm()
    a = np.ones(MIB)

    def rounds():
        for _ in range(20):
            p.map(T.total, [a] * 4)
            p.map(T.full, [MIB] * 4)
        return len(os.listdir("/proc/self/fd")), max(p.map(T.open_fds, range(2), chunksize=1))

    with forklift.Pool(2) as p:
        parent_before, worker_before = rounds()  # spare segments are kept after this
        parent_after, worker_after = rounds()
    assert parent_after <= parent_before + 2 and worker_after <= worker_before + 2
    assert forklift_segments_in_dev_shm() == before_shm


def test_small_buffers_stay_in_the_pipe(pool):
    small = np.ones(1000)
    assert pool.map(T.total, [small]) == [1000.0]


# -- SharedArray ----------------------------------------------------------------------------


@pytest.mark.needs("proc")
def test_workers_write_into_a_shared_array(start_method):
    a = SharedArray((8,), np.int64)
    with forklift.Pool(2, start_method=start_method) as p:
        assert p.starmap(T.write_cell, [(a, i, i * 10) for i in range(8)]) == [True] * 8
        view = p.apply(T.head, (a[2:],))  # a view sent back is the same memory
    assert a.tolist() == [i * 10 for i in range(8)]
    assert isinstance(view, SharedArray) and view.is_shared and view.tolist() == [20, 30, 40]
    view[0] = -1
    assert a[2] == -1


def test_a_shared_array_pickles_by_name_whatever_its_size():
    a = SharedArray((1000, 1000))
    assert len(pickle.dumps(a)) < 300
    b = SharedArray.from_array(np.arange(12.0).reshape(3, 4))
    back = pickle.loads(pickle.dumps(b.T[1]))
    assert back.tolist() == [1.0, 5.0, 9.0] and back.is_shared
    b[0, 1] = 100.0
    assert back[0] == 100.0  # the same memory, not a copy


def test_computed_results_are_plain_private_arrays():
    a = forklift.shared_array((4,))
    assert type(a + 1) is np.ndarray
    assert isinstance(a[1:], SharedArray) and a[1:].is_shared
    assert float(a.sum()) == 0.0 and not isinstance(a.sum(), np.ndarray)
    a += 1
    assert isinstance(a, SharedArray) and a.tolist() == [1.0] * 4
    assert SharedArray((0,)).size == 0


@pytest.mark.needs("proc")
def test_closed_array_cannot_be_attached_but_stays_usable(pool):
    a = SharedArray.from_array(np.arange(4.0))
    assert pool.apply(T.total, (a,)) == 6.0
    b = SharedArray.from_array(np.arange(4.0))
    a.close()
    b.close()
    a[0] = 10.0  # still usable here
    assert float(a.sum()) == 16.0
    with pytest.raises(forklift.SerializationError, match="gone") as info:
        pool.apply(T.total, (b,))  # never attached by a worker: it cannot be now
    assert isinstance(info.value.__cause__, SharingError)


@pytest.mark.needs("proc")
def test_no_leak_and_no_warning_when_the_owner_is_killed(tmp_path):
    script = textwrap.dedent(
        """
        import os, signal, sys
        import numpy as np
        sys.path.insert(0, sys.argv[1])
        import forklift, shm_tasks
        a = forklift.SharedArray((1 << 20,))
        with forklift.Pool(2) as p:
            p.starmap(shm_tasks.write_cell, [(a, 0, 1.0)])
            p.map(shm_tasks.total, [np.ones(1 << 20)])
            if sys.argv[2] == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
        print("done")
        """
    )
    before = forklift_segments_in_dev_shm()
    for how in ("exit", "kill"):
        proc = subprocess.run(
            [sys.executable, "-c", script, os.path.dirname(__file__), how],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.stderr == ""  # no resource_tracker "leaked shared_memory" warning
        assert proc.returncode == (0 if how == "exit" else -9)
    assert forklift_segments_in_dev_shm() == before


def test_the_same_array_twice_in_a_map_and_changes_between_maps(pool):
    a = np.ones(MIB)
    assert pool.map(T.total, [a, a, a]) == [float(MIB)] * 3  # one copy, three tasks
    a[:] = 3.0
    assert pool.map(T.total, [a, a]) == [3.0 * MIB] * 2  # a new map copies the new values
    assert pool.map(T.add_one_in_place, [a, a]) == [4.0 * MIB] * 2  # each task its own copy


def test_a_kept_argument_sent_twice_stays_intact():
    with forklift.Pool(1) as p:
        a = np.full(MIB, 1.0)
        p.map(T.keep, [a, a])
        for value in (2.0, 3.0):
            assert p.map(T.total, [np.full(MIB, value)] * 2) == [value * MIB] * 2
        firsts, lasts = p.apply(T.first_kept)
    assert firsts == [1.0, 1.0] and lasts == [1.0, 1.0]


def test_results_the_caller_keeps_are_never_overwritten_by_later_ones():
    with forklift.Pool(1) as p:
        kept = [p.apply(T.full, (MIB, float(i))) for i in range(20)]  # more than a worker lends
        for i in range(20):  # dropped at once: their segments are reused for the next
            assert float(p.apply(T.full, (MIB, 100.0 + i))[-1]) == 100.0 + i
        kept += p.map(T.full, [MIB] * 3)
    assert [float(a.min()) for a in kept[:20]] == [float(i) for i in range(20)]
    assert [float(a.max()) for a in kept[:20]] == [float(i) for i in range(20)]
    assert all(float(a.sum()) == 2.0 * MIB for a in kept[20:])


@pytest.mark.needs("proc")
def test_a_shared_array_made_and_dropped_in_the_task_fails_clearly(pool):
    with pytest.raises(forklift.SerializationError, match="gone"):
        pool.apply(T.make_shared_array, (0,))  # once, not re-run forever
    assert pool.apply(T.total, (np.ones(3),)) == 3.0


def test_a_shared_array_refuses_python_objects_and_negative_dimensions():
    with pytest.raises(TypeError, match="Python objects"):
        SharedArray((3,), dtype=object)
    for shape in (-1, (2, -3)):
        with pytest.raises(ValueError, match="negative dimensions"):
            forklift.shared_array(shape)
    for shape in (3, np.int64(3), np.array(3), [3], (np.int32(3),)):
        assert forklift.shared_array(shape).shape == (3,), shape
    assert forklift.shared_array((0, 2)).size == 0
    for shape in ((2**62,), (2**40, 2**40)):  # numpy's own ValueError, not an OverflowError
        with pytest.raises(ValueError, match="array is too big"):
            forklift.shared_array(shape)


def test_the_same_big_bytes_twice_in_one_task_stays_one_object(pool):
    big = bytearray(2 * MIB)
    assert pool.starmap(T.same_object, [(big, big)]) == [(True, 2 * MIB)]  # as pickle keeps it


@pytest.mark.parametrize("limit", [160, 64])
def test_keeping_many_results_does_not_run_out_of_descriptors(tmp_path, limit):
    """Each big result travels in a memfd segment the worker holds until the parent maps it.
    At a low descriptor limit (160; 64 is below what a worker holds when it runs ahead of a
    slow parent, seen in the 3.13 matrix run under load) a segment that cannot be made sends
    its buffer in-band: no worker dies of EMFILE, nothing is printed, every result is right."""
    script = textwrap.dedent(
        """
        import resource, sys
        sys.path.insert(0, sys.argv[1])
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[2]), hard))
        import forklift, shm_tasks
        with forklift.Pool(2) as p:
            kept = p.map(shm_tasks.full_small, range(300))
            lost = p.statistics().workers_lost
        print(all(float(a[0]) == i == float(a[-1]) for i, a in enumerate(kept)), lost)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, os.path.dirname(__file__), str(limit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout.strip() == "True 0", proc.stderr
    assert proc.stderr == ""
