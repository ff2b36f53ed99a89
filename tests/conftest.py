import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

START_METHODS = ["fork", "forkserver", "spawn"]


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
