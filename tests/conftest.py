import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


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
    """Address of a 2-process Dask cluster shared by the batch tests (started once: ~seconds).

    Configured as the LocalCluster of ``nodegraph batch``: the scheduler does not retry tasks
    of a dead worker itself (``--retries`` alone decides) and gives a worker one task at a time.
    """
    import logging

    import dask
    from dask.distributed import LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                          "distributed.scheduler.worker-saturation": 1.0}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               silence_logs=logging.ERROR, dashboard_address=":0",
                               env={"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
    yield cluster.scheduler_address
    cluster.close()
