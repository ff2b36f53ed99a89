"""The same scenarios on multiprocessing.Pool / ProcessPoolExecutor and on forklift: same answers."""

import concurrent.futures as cf
import gc
import multiprocessing
import sys
import warnings

import pytest

import forklift

import tasks

SCENARIOS = [
    ("map", lambda p: p.map(tasks.square, range(37))),
    ("map chunksize", lambda p: p.map(tasks.square, range(37), 5)),
    ("map empty", lambda p: p.map(tasks.square, [])),
    ("starmap", lambda p: p.starmap(tasks.add, [(i, i) for i in range(9)])),
    ("imap", lambda p: list(p.imap(tasks.square, range(23)))),
    ("imap chunksize", lambda p: list(p.imap(tasks.square, iter(range(23)), 4))),
    ("imap_unordered sorted", lambda p: sorted(p.imap_unordered(tasks.square, range(23)))),
    ("apply", lambda p: p.apply(tasks.add, (1,), {"b": 2})),
    ("apply_async", lambda p: p.apply_async(tasks.square, (9,)).get(10)),
    ("map_async", lambda p: p.map_async(tasks.square, range(5)).get(10)),
    ("starmap_async", lambda p: p.starmap_async(tasks.add, [(1, 2)]).get(10)),
]


@pytest.fixture(scope="module")
def pools():
    std = multiprocessing.get_context("fork").Pool(2)
    ours = forklift.Pool(2)
    yield std, ours
    std.terminate()
    ours.terminate()


@pytest.mark.parametrize(("name", "run"), SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_pool_same_results(pools, name, run):
    std, ours = pools
    assert run(ours) == run(std)


ERRORS = [
    ("map raises task error", lambda p: p.map(tasks.fail_on, range(6))),
    ("apply raises task error", lambda p: p.apply(tasks.raise_custom, (1,))),
    ("imap raises at item", lambda p: list(p.imap(tasks.fail_on, range(6)))),
    ("apply_async get raises", lambda p: p.apply_async(tasks.fail_on, (3,)).get(10)),
]


@pytest.mark.parametrize(("name", "run"), ERRORS, ids=[s[0] for s in ERRORS])
def test_pool_same_exception_types(pools, name, run):
    std, ours = pools
    with pytest.raises(Exception) as theirs:
        run(std)
    with pytest.raises(Exception) as mine:
        run(ours)
    assert type(mine.value) is type(theirs.value)
    assert str(mine.value) == str(theirs.value)
    assert type(mine.value.__cause__).__name__.endswith("RemoteTraceback")


def test_pool_same_timeout_error_type(pools):
    std, ours = pools
    for pool in (std, ours):
        with pytest.raises(multiprocessing.TimeoutError):
            pool.apply_async(tasks.sleep_return, (0.5,)).get(timeout=0.01)


def test_executor_same_results_and_errors():
    with cf.ProcessPoolExecutor(2) as std, forklift.Executor(2) as ours:
        for ex in (std, ours):
            assert list(ex.map(tasks.square, range(11))) == [x * x for x in range(11)]
            assert list(ex.map(tasks.add, range(4), range(10, 13))) == [10, 12, 14]
            assert ex.submit(tasks.add, 2, b=3).result(10) == 5
        std_exc = std.submit(tasks.raise_custom, 1).exception(10)
        our_exc = ours.submit(tasks.raise_custom, 1).exception(10)
        assert type(our_exc) is type(std_exc) and str(our_exc) == str(std_exc)
        std_it, our_it = (
            std.map(tasks.sleep_return, [1.0], timeout=0.05),
            ours.map(tasks.sleep_return, [1.0], timeout=0.05),
        )
        for it in (std_it, our_it):
            with pytest.raises(cf.TimeoutError):
                next(it)


def test_where_stdlib_fails_forklift_works():
    """Lambdas: the standard library refuses them, forklift runs them."""
    std = multiprocessing.get_context("fork").Pool(1)
    try:
        with pytest.raises(Exception):
            std.map(lambda x: x, [1])
    finally:
        std.terminate()
    with forklift.Pool(1) as ours:
        assert ours.map(lambda x: x + 1, [1]) == [2]


def _fails_at(n):
    yield from range(n)
    raise ValueError(f"the input fails at item {n}")


def _until_error(it):
    """The results an iterator gives before it raises the input's ValueError, and what follows it."""
    out = []
    with pytest.raises(ValueError, match="the input fails at item 3"):
        for value in it:
            out.append(value)
    return out, next(it, "end")


def test_imap_over_an_input_that_raises_gives_the_results_before_it(pools):
    std, ours = pools
    assert _until_error(std.imap(tasks.square, _fails_at(3))) == ([0, 1, 4], "end")
    assert _until_error(ours.imap(tasks.square, _fails_at(3))) == ([0, 1, 4], "end")
    assert _until_error(ours.imap(tasks.square, _fails_at(3), 2)) == ([0, 1, 4], "end")
    # the stdlib's unordered error may come before the last result; forklift's comes after them all
    results, after = _until_error(ours.imap_unordered(tasks.square, _fails_at(3)))
    assert (sorted(results), after) == ([0, 1, 4], "end")


def test_executor_map_over_an_input_that_raises_is_lazy_where_the_stdlib_is_eager():
    with cf.ProcessPoolExecutor(1) as std, pytest.raises(ValueError, match="the input fails at item 3"):
        std.map(tasks.square, _fails_at(3))  # it submits everything at the call
    with forklift.Executor(2) as ours:
        it = ours.map(tasks.square, _fails_at(3))  # lazy: the error comes in its place
        assert _until_error(it) == ([0, 1, 4], "end")
        assert _until_error(ours.map(tasks.add, _fails_at(3), range(9))) == ([0, 2, 4], "end")


@pytest.mark.parametrize("bad", [0, -1, 0.5, 2.0, "12"])
def test_bad_maxtasksperchild_is_the_stdlibs_value_error(bad):
    for make in (multiprocessing.get_context("fork").Pool, forklift.Pool):
        with pytest.raises(ValueError, match="maxtasksperchild must be a positive int or None"):
            make(1, maxtasksperchild=bad)
    with pytest.raises(ValueError, match="max_tasks_per_child must be a positive int or None"):
        forklift.Pool(1, max_tasks_per_child=bad)  # the same option, forklift's spelling
    error = ValueError if isinstance(bad, int) else TypeError  # ProcessPoolExecutor's own rule
    if sys.version_info >= (3, 11):  # where ProcessPoolExecutor has max_tasks_per_child
        with pytest.raises(error, match="max_tasks_per_child"):
            cf.ProcessPoolExecutor(1, multiprocessing.get_context("spawn"), max_tasks_per_child=bad)
    with pytest.raises(error, match="max_tasks_per_child"):
        forklift.Executor(1, max_tasks_per_child=bad)


def test_maxtasksperchild_true_is_refused_and_both_spellings_at_once_too():
    with pytest.raises(ValueError, match="not True"):  # the stdlib takes it for 1: a mistake
        forklift.Pool(1, maxtasksperchild=True)
    with pytest.raises(TypeError, match="not both"):  # one of them was silently ignored
        forklift.Pool(1, maxtasksperchild=2, max_tasks_per_child=3)


def test_a_running_pool_dropped_unclosed_warns_as_the_stdlibs_does():
    for make in (multiprocessing.get_context("fork").Pool, forklift.Pool):
        pool = make(1)
        with pytest.warns(ResourceWarning, match="^unclosed running multiprocessing pool <"):
            del pool
            gc.collect()
    closed, terminated = forklift.Pool(1), forklift.Pool(1)
    closed.close()
    terminated.terminate()
    executors = [cf.ProcessPoolExecutor(1), forklift.Executor(1)]  # neither warns: the stdlib's does not
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        del closed, terminated, executors
        gc.collect()
