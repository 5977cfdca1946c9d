import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


_THREAD_SETTINGS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENCV_FOR_THREADS_NUM")
_SESSION_THREAD_SETTINGS = {name: os.environ.get(name) for name in _THREAD_SETTINGS}


@pytest.fixture(autouse=True)
def _thread_settings_as_at_start():
    """Each test starts with the thread settings the session started with. A Dask nanny sets
    ``distributed.nanny.pre-spawn-environ`` (nodegraph.batch: NUMBA_NUM_THREADS=1...) in its
    own process, which in the tests is this one, each time it (re)starts a worker; Numba
    re-reads the variable whenever it compiles, and refuses a value other than the one its
    threads were launched with."""
    for name, value in _SESSION_THREAD_SETTINGS.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    yield


@pytest.fixture
def toy_registry():
    """A registry with only the toy nodes."""
    import toy_nodes

    return toy_nodes.registry()


@pytest.fixture
def write_yaml(tmp_path):
    """Write YAML text to a file under tmp_path and return its path."""
    def write(text: str, name: str = "graph.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path
    return write


@pytest.fixture(scope="session")
def dask_scheduler():
    """Address of a 2-process cluster like the one ``nodegraph batch`` starts, shared by the tests."""
    from nodegraph.batch import local_cluster

    cluster = local_cluster(2)
    yield cluster.scheduler_address
    cluster.close()
