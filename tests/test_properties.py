"""Property tests: whatever the input and chunking, results equal the serial answer."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import forklift

import tasks

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
chunksizes = st.one_of(st.none(), st.integers(min_value=1, max_value=60))
ints = st.lists(st.integers(min_value=-(10**6), max_value=10**6), max_size=300)


@pytest.fixture(scope="module")
def shared_pool():
    with forklift.Pool(2) as p:
        yield p


@SETTINGS
@given(xs=ints, chunksize=chunksizes)
def test_map_equals_builtin_map(shared_pool, xs, chunksize):
    assert shared_pool.map(tasks.square, xs, chunksize) == [x * x for x in xs]


@SETTINGS
@given(xs=ints, chunksize=chunksizes)
def test_imap_is_ordered_and_imap_unordered_is_a_permutation(shared_pool, xs, chunksize):
    assert list(shared_pool.imap(tasks.square, iter(xs), chunksize)) == [x * x for x in xs]
    assert sorted(shared_pool.imap_unordered(tasks.square, xs, chunksize)) == sorted(x * x for x in xs)


@SETTINGS
@given(xs=st.lists(st.integers(min_value=0, max_value=9), max_size=60), chunksize=chunksizes)
def test_failures_land_exactly_on_their_items(shared_pool, xs, chunksize):
    """Items equal to 3 fail; every other result arrives once, in its place."""
    out = []
    it = shared_pool.imap(tasks.fail_on, xs, chunksize)
    for _ in xs:
        try:
            out.append(next(it))
        except ValueError:
            out.append("err")
    assert out == ["err" if x == 3 else x for x in xs]
    with pytest.raises(StopIteration):
        next(it)


def test_progress_bar_counts_every_task(capsys):
    with forklift.Pool(2, progress=True) as pool:
        assert pool.map(tasks.square, range(500)) == [x * x for x in range(500)]
        assert sum(pool.imap_unordered(tasks.square, range(100), progress="squares")) == sum(
            x * x for x in range(100)
        )
    with forklift.Executor(2) as ex:
        assert list(ex.map(tasks.square, range(50), progress=True)) == [x * x for x in range(50)]
    err = capsys.readouterr().err
    assert "500/500" in err and "100/100" in err and "squares" in err and "50/50" in err
