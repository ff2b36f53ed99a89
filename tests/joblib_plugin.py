"""A pytest plugin that adds forklift's backend to joblib's own test suite (tests/test_joblib.py).

joblib's tests parametrize over joblib's registered BACKENDS (read as their module loads: the
backend is registered before), and over the lists PROCESS_BACKENDS and PARALLEL_BACKENDS of
joblib.test.test_parallel (read at collection: "forklift" is added to them before that), so
every backend test of joblib runs on forklift too.
"""


def pytest_configure(config):
    from forklift.joblib import ForkliftBackend, register

    register()  # before the suite's module loads: it reads joblib's BACKENDS then
    import joblib.test.test_parallel as suite

    for name in ("PROCESS_BACKENDS", "PARALLEL_BACKENDS"):
        getattr(suite, name).append("forklift")
    suite.RETURN_GENERATOR_BACKENDS["forklift"] = ForkliftBackend
