"""The options object: checked once, handed down; per-call keywords typed for mypy and checked at run time."""

import subprocess
import sys
import textwrap

import pytest

from forklift._options import UNSET, CallOptions, Journaling, PoolOptions


def _build(**given):
    base = dict(
        processes=None,
        initializer=None,
        initargs=(),
        start_method=None,
        max_tasks_per_child=None,
        max_memory=None,
        init_timeout=None,
        journal=None,
        address=None,
        credentials=None,
        calls=CallOptions(),
        local_only={},
    )
    return PoolOptions.build(**{**base, **given})


@pytest.mark.parametrize(
    ("given", "error"),
    [
        ({"processes": 0}, ValueError),
        ({"processes": True}, TypeError),
        ({"max_memory": -1}, ValueError),
        ({"max_tasks_per_child": 1.5}, TypeError),
        ({"init_timeout": float("nan")}, ValueError),
        ({"initializer": 5}, TypeError),
        ({"start_method": 5}, TypeError),
    ],
)
def test_pool_options_are_checked_when_built(given, error):
    with pytest.raises(error):
        _build(**given)


def test_pool_options_name_the_local_only_options_given(monkeypatch):
    monkeypatch.delenv("FORKLIFT_ADDRESS", raising=False)
    options = _build(local_only={"max_memory": 1 << 30, "initializer": None, "initargs": ()})
    assert options.local_only == ("max_memory",) and options.address is None
    monkeypatch.setenv("FORKLIFT_ADDRESS", "tls://example:8786")
    assert _build().address == "tls://example:8786"


def test_call_options_keep_the_defaults_a_call_does_not_give():
    defaults = CallOptions.build(5.0, 2, "bar")
    assert defaults.given() is defaults
    assert defaults.given(timeout=None) == CallOptions(None, 2, "bar")
    assert defaults.given(UNSET, 0, UNSET) == CallOptions(5.0, 0, "bar")
    assert defaults.of({"progress": False}) == CallOptions(5.0, 2, False)
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        defaults.of({"journal": "x.db"})  # only maps take a journal
    with pytest.raises(ValueError):
        defaults.given(timeout=-1)
    with pytest.raises(TypeError):
        defaults.given(progress=5)


@pytest.mark.parametrize(
    ("given", "pool_resumes", "expected"),
    [
        ({}, False, Journaling(None, False, False)),
        ({}, True, Journaling(None, True, True)),  # the pool's default: resume, lenient
        ({"force": False}, True, Journaling(None, True, False)),
        ({"resume": False}, True, Journaling(None, False, False)),
        ({"journal": "a.db"}, True, Journaling("a.db", False, False)),
        ({"journal": "a.db", "resume": True}, False, Journaling("a.db", True, False)),
    ],
)
def test_a_maps_journaling(given, pool_resumes, expected):
    assert Journaling.of(given, pool_resumes) == expected


def test_resume_and_force_must_be_bools():
    for given in ({"resume": 1}, {"force": "yes"}):
        with pytest.raises(TypeError, match="must be a bool"):
            Journaling.of(given, False)


def test_per_call_keywords_are_typed_for_mypy(tmp_path):
    """Pool.map/imap's keywords are declared once (TypedDicts) and mypy checks every call."""
    mypy = pytest.importorskip("mypy.api")
    code = tmp_path / "calls.py"
    code.write_text(
        textwrap.dedent(
            """
            import forklift
            def use(p: forklift.Pool, ex: forklift.Executor) -> None:
                p.map(abs, [1], timeout=1.0, retries=2, progress="x", journal="a.db", resume=True)
                p.imap(abs, [1], timeout=None)
                p.map(abs, [1], timeout="soon")
                p.imap(abs, [1], journal="a.db")
                ex.options(retries=1).map(abs, [1], task_timeout=2.0)
                ex.options(retries=1).map(abs, [1], task_timeout="x")
            """
        )
    )
    out, _, status = mypy.run([str(code), "--python-executable", sys.executable, "--no-incremental"])
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert status == 1 and len(errors) == 3, out
    assert [int(line.split(":")[1]) for line in errors] == [6, 7, 9], out


def test_a_typo_in_a_per_call_keyword_is_a_type_error_at_run_time():
    script = "import forklift\nwith forklift.Pool(1) as p:\n    p.imap(abs, [1], timout=1)\n"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert "TypeError: unexpected keyword argument(s): timout" in out.stderr
