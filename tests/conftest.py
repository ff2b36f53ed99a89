import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

START_METHODS = ["fork", "forkserver", "spawn"]

# A shell without job control starts a background command (`make test-versions &`, a CI runner's
# step) with SIGINT ignored, and Python then keeps it ignored: the Ctrl-C tests' os.kill(SIGINT)
# would do nothing and they would hang until their timeout. Give the suite Python's own handler.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_runtest_setup(item):
    """``@pytest.mark.needs("proc")``: the test checks a guarantee that Linux feature buys, so it
    is skipped when FORKLIFT_WITHOUT switches the feature off (``make test-fallbacks``)."""
    for mark in item.iter_markers("needs"):
        from forklift import _platform

        off = [feature for feature in mark.args if not _platform.has(feature)]
        if off:
            pytest.skip(f"tests what {', '.join(off)} buys: switched off by FORKLIFT_WITHOUT")


@pytest.fixture(params=START_METHODS)
def start_method(request):
    return request.param


@pytest.fixture
def pool():
    import forklift

    with forklift.Pool(2) as p:
        yield p


@pytest.fixture
def executor():
    import forklift

    ex = forklift.Executor(2)
    yield ex
    ex.terminate()


# A hard backstop behind pytest-timeout: its alarm fires once per test, and a test
# that swallows the exception (hypothesis shrinking does) could hang on. This one
# dumps every thread's stack and ends the run.
HARD_LIMIT = 240


@pytest.fixture(autouse=True)
def _hard_watchdog():
    import faulthandler

    faulthandler.dump_traceback_later(HARD_LIMIT, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()
